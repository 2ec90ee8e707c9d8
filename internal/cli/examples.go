package cli

// usageExamples are the workflow snippets shown in each action's README.
var usageExamples = map[string]string{
	"build-push": `permissions:
  contents: read
  packages: write   # ghcr.io
  id-token: write   # ECR or Artifact Registry through OIDC
steps:
  - uses: actions/checkout@v4
  - run: CGO_ENABLED=0 go build -o dist/app ./cmd/app
  - id: image
    uses: gantry-dev/gantry/actions/build-push@v1
    with:
      registries: |
        ghcr.io/${{ github.repository }}
        123456789012.dkr.ecr.eu-west-3.amazonaws.com/api
      aws-role-arn: arn:aws:iam::123456789012:role/gantry-push
      files: dist/app:/app:0755
      entrypoint: /app
      ports: 8080
  - run: echo "pushed ${{ steps.image.outputs.digest }} as ${{ steps.image.outputs.sha-tag }}"
`,
	"promote": `steps:
  - uses: gantry-dev/gantry/actions/promote@v1
    with:
      source: ghcr.io/acme/api@${{ needs.build.outputs.digest }}
      registries: registry.example.com/prod/api
      tags: production
      username: ${{ secrets.PROD_REGISTRY_USER }}
      password: ${{ secrets.PROD_REGISTRY_TOKEN }}
`,
}
