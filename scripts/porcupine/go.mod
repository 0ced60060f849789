module valthree.invalid/porcupine-driver

go 1.19

require github.com/anishathalye/porcupine v0.0.0

// Porcupine is built from a local checkout of its source (see docs/benchmarks.md, "Crashed
// writes against Porcupine"); run `go mod edit -replace` to point elsewhere.
replace github.com/anishathalye/porcupine => ../../../porcupine
