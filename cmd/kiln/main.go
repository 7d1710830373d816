// Command kiln is the kiln admin and application CLI. See `kiln --help`.
package main

import (
	"os"

	"github.com/kiln-serving/kiln/services/cli"
)

func main() {
	os.Exit(cli.Main(os.Args))
}
