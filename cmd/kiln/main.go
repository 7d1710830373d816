// Command kiln is the kiln admin and application CLI. See `kiln --help`.
package main

import (
	"os"

	"github.com/kiln-serving/kiln/cmd/kiln/commands"
)

func main() {
	os.Exit(commands.Main(os.Args))
}
