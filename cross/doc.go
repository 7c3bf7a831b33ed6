// Package cross holds no code of its own: it is where the tests live that
// check the shipped binaries as a whole, from the outside, the way a device
// receives them. cross.mk builds them (make cross, make rpm, make
// test-emulated, make footprint); cmd/mkrpm and rpmpkg package them; see
// README.md.
package cross
