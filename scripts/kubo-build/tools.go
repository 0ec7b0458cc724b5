//go:build tools

// Package tools pins the Kubo that `make setup` builds (scripts/provision_engines.sh).
//
// Kubo v0.43.1 cannot be built with `go install github.com/ipfs/kubo/cmd/ipfs@v0.43.1`:
// its go.mod replaces github.com/libp2p/go-libp2p with a fork
// (github.com/lidel/go-libp2p v0.0.0-20260914191659-9c4ee60cf924) that the Go module
// proxy does not serve. The fork's own TODO says to drop it "once a go-libp2p release
// requires quic-go >= v0.62.0 and webtransport-go >= v0.13.0": go-libp2p v0.50.0
// (a week after the fork) is that release, so this module builds Kubo v0.43.1 with it.
// Upstream go-libp2p v0.49.0 (Kubo's own requirement) does not compile against the
// quic-go/webtransport-go versions Kubo needs. Everything else is as Kubo pins it.
package tools

import _ "github.com/ipfs/kubo/cmd/ipfs"
