// Package release cuts gantry's releases so they work with GitHub's immutable releases and
// SHA-pinning policies, and holds the tests of the install path (scripts/install.sh).
//
// A release vX.Y.Z is made from main's commit M by two commits on no branch: S adds the VERSION
// file and pins the default edge image by digest, and R pins every internal uses: of the
// workflows and actions to S's SHA (a commit cannot name its own). R and S differ only in those
// lines, so R's workflows run S's actions, the same code. The tag vX.Y.Z points at R; the
// release is created as a draft, given every asset, then published, as nothing can be added to
// an immutable release; vMAJOR and vMAJOR.MINOR are plain git tags moved to R when it is the
// newest release of them. cmd/gantry-release runs these steps for .github/workflows/release.yml.
package release
