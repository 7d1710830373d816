package v1

import (
	"math"
	"math/big"
	"regexp"
	"strconv"
)

// envName is Kubernetes' C_IDENTIFIER: what a shell and every runtime
// accept as a variable name. A name with "=" would split into another
// variable in the container's environment block.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

const envNameMessage = "a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName', regex used for validation is '[A-Za-z_][A-Za-z0-9_]*')"

// maxQuantity bounds every resource quantity so that its value in
// milli-units fits an int64, the unit the scheduler counts CPU in:
// "9E" cpu would otherwise wrap to negative millicores and pass every
// capacity check.
var maxQuantity = new(big.Rat).SetFrac(big.NewInt(math.MaxInt64), big.NewInt(1000))

var maxQuantityMessage = "must be less than or equal to " + strconv.FormatInt(math.MaxInt64/1000, 10)

// parseFiniteFloat parses an annotation number, refusing NaN and ±Inf,
// which strconv accepts and which compare false against every bound.
func parseFiniteFloat(v string) (float64, bool) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}
