module vouchers.example/checktlog

go 1.19

// x/mod v0.7.0: its go.mod says go 1.17, so it builds with Debian bookworm's Go 1.19.
// Debian's golang-golang-x-mod-dev (0.7.0) ships the same source under
// /usr/share/gocode/src/golang.org/x/mod; tests/e2e/test_go_tooling.py builds a
// copy of this module with a replace to it (no network), or, without that
// package, fetches x/mod from the module proxy (GOFLAGS=-mod=mod adds its hash).
require golang.org/x/mod v0.7.0
