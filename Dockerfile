# gantry as an image, for CI systems other than GitHub Actions:
#   docker run --rm ghcr.io/gantry-dev/gantry:v1 <subcommand> [flags]
# Build: docker build --build-arg VERSION=v1.2.3 -t gantry .
# Same compiler flags as the release (.goreleaser.yaml) and install.sh --build.

FROM --platform=$BUILDPLATFORM golang:1.26.7-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath \
      -ldflags "-s -w -X github.com/gantry-dev/gantry/internal/version.Version=${VERSION}" \
      -o /out/gantry ./cmd/gantry

# static-debian12 carries CA certificates, tzdata and the nonroot user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="gantry" \
      org.opencontainers.image.description="Build, promote, deploy and verify containers: the gantry CLI behind the gantry GitHub Actions" \
      org.opencontainers.image.source="https://github.com/gantry-dev/gantry" \
      org.opencontainers.image.url="https://github.com/gantry-dev/gantry" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/gantry /usr/local/bin/gantry
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/gantry"]
