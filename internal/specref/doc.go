// Package specref holds no code of its own: its test checks that every rule
// id (R1, R2, …) cited in the repository's Go and Markdown files has a rule
// heading in docs/SPEC.md, the repository's behaviour contract, so that a
// user who meets "R13" in an error, a --help text or a test can look it up.
//
// Run it with go test ./internal/specref. It finds the repository root by
// walking up from the package directory to go.mod, lists files with
// git ls-files (tracked and untracked, minus what .gitignore excludes) or,
// where git is not available, by walking the tree without .git.
package specref
