// Command kilnd runs kiln's server roles. See `kilnd --help`.
package main

import (
	"fmt"
	"os"

	"github.com/kiln-serving/kiln/services/kilnd"
)

func main() {
	if err := kilnd.NewApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
