// Package acceptance runs gantry's actions the way a consumer's workflow
// does, under nektos/act in host mode, against real local peers.
package acceptance
