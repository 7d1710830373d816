// Command kilnd runs kiln's server roles. See `kilnd --help`.
package main

import (
	"fmt"
	"os"

	"github.com/kiln-serving/kiln/cmd/kilnd/commands"
)

func main() {
	if err := commands.NewApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
