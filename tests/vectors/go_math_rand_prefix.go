// Prints the first 607 Int63 outputs of Go's math/rand for a few seeds as JSON.
package main

import (
	"encoding/json"
	"math/rand"
	"os"
	"strconv"
)

func main() {
	out := map[string][]int64{}
	for _, seed := range []int64{41, 42} {
		r := rand.New(rand.NewSource(seed))
		vals := make([]int64, 607)
		for i := range vals {
			vals[i] = r.Int63()
		}
		out[strconv.FormatInt(seed, 10)] = vals
	}
	enc := json.NewEncoder(os.Stdout)
	enc.Encode(out)
}
