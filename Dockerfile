# syntax=docker/dockerfile:1
# Ferry's two images from one multi-stage build:
#   docker buildx build --target relay  -t ferry-relay .   # the relay: non-root, CA certificates
#   docker buildx build --target action -t ferry-action .  # the GitHub Action: root, as GitHub requires
# Binaries are static (CGO_ENABLED=0), stripped and reproducible (-trimpath), and leave out
# GCS's gRPC DirectPath (-tags disable_grpc_modules: a faster start; see the Makefile). The release
# workflow builds both for linux/amd64 and linux/arm64, cross-compiling on the build platform.

FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
ENV GOTOOLCHAIN=local CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -tags disable_grpc_modules -ldflags="-s -w" -o /out/ ./cmd/relay ./cmd/action

# The relay: a minimal image with CA certificates (Redis over TLS, the OIDC issuer), running
# as an unprivileged user.
FROM gcr.io/distroless/static-debian12:nonroot AS relay
COPY --from=build /out/relay /usr/local/bin/relay
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/relay"]

# The action: GitHub runs container actions as root (it mounts the workspace and file-command
# files root-owned), so no USER here. Exec-form entrypoint with an absolute path; the action
# does not depend on WORKDIR. distroless/static has CA certificates and /tmp.
FROM gcr.io/distroless/static-debian12 AS action
COPY --from=build /out/action /usr/local/bin/ferry-action
ENTRYPOINT ["/usr/local/bin/ferry-action"]
