// Package layering holds the test of gantry's import rules (layering_test.go):
// what the Actions runtime, the domain packages, the deploy targets and the
// test peers may import. It has no code of its own.
package layering
