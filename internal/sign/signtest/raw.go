package signtest

import (
	"context"
	"fmt"
	"time"

	sgsign "github.com/sigstore/sigstore-go/pkg/sign"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ferryhq/ferry/internal/sign"
)

// SignBlobUnverified signs data keylessly through the harness's Fulcio and Rekor (or its TSA
// when tsa is true) with the identity of c, and returns the bundle JSON WITHOUT verifying it.
// It exists to build bundles that Ferry's signer would refuse to publish (for example with
// [Harness.ExpireCertificates]), so tests can show that verifiers reject them too.
func (h *Harness) SignBlobUnverified(ctx context.Context, data []byte, c sign.Claims, tsa bool) ([]byte, error) {
	kp, err := sgsign.NewEphemeralKeypair(nil)
	if err != nil {
		return nil, err
	}
	opts := sgsign.BundleOptions{
		Context:                    ctx,
		CertificateProvider:        sgsign.NewFulcio(&sgsign.FulcioOptions{BaseURL: h.FulcioURL, Timeout: 10 * time.Second}),
		CertificateProviderOptions: &sgsign.CertificateProviderOptions{IDToken: h.Token(c)},
	}
	if tsa {
		opts.TimestampAuthorities = []*sgsign.TimestampAuthority{sgsign.NewTimestampAuthority(&sgsign.TimestampAuthorityOptions{URL: h.TSAURL, Timeout: 10 * time.Second})}
	} else {
		opts.TransparencyLogs = []sgsign.Transparency{sgsign.NewRekor(&sgsign.RekorOptions{BaseURL: h.RekorURL, Version: 1, Timeout: 10 * time.Second})}
	}
	pb, err := sgsign.Bundle(&sgsign.PlainData{Data: data}, kp, opts)
	if err != nil {
		return nil, fmt.Errorf("sign blob: %w", err)
	}
	return protojson.Marshal(pb)
}
