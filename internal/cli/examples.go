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
  # Outputs reach a script through env:, never through ${{ }} inside run:.
  - env:
      DIGEST: ${{ steps.image.outputs.digest }}
      SHA_TAG: ${{ steps.image.outputs.sha-tag }}
    run: echo "pushed $DIGEST as $SHA_TAG"
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
	"resolve": `steps:
  # A rollback to a known-good commit, without a rebuild: its images are
  # still in the registry under sha-XXXXXXX.
  - id: images
    uses: gantry-dev/gantry/actions/resolve@v1
    with:
      sha: ${{ inputs.sha }}
      images: |
        api=europe-docker.pkg.dev/acme/apps/api
        dashboard=europe-docker.pkg.dev/acme/apps/dashboard
      gcp-workload-identity-provider: ${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}
      gcp-service-account: ${{ vars.GCP_SERVICE_ACCOUNT }}
  - uses: gantry-dev/gantry/actions/deploy-compose@v1
    with:
      images: ${{ steps.images.outputs.images }}   # service=repository@sha256:...
      sha: ${{ inputs.sha }}
      # host, user, ssh-key, known-hosts, project, url ...
`,
	"verify": `steps:
  # ... deploy sha ${{ github.sha }} ...
  - id: verify
    uses: gantry-dev/gantry/actions/verify@v1
    with:
      url: https://api.example.com          # /health is appended
      # sha defaults to the run's commit; the health JSON must report it in
      # git_sha, version (sha-... too) or commit, or set version-field.
      version-field: build.commit
      headers: |
        Authorization: Bearer ${{ secrets.HEALTH_TOKEN }}
      timeout: 3m
      consecutive: 3                          # three right answers in a row
      # One check a line, run once the version is right:
      #   METHOD /path [status=201|4xx] [max=300ms] [body=JSON|'text'] [header=Name:value]
      #                [contains=TEXT] [json.PATH exists|absent] [json.PATH=VALUE]
      # VALUE is JSON (1, true, "1", {"a":1}) or else a plain word; '...', "..." and
      # {...} may hold spaces. The default status is any 2xx. exec SERVICE -- CMD
      # lines run in containers and belong to deploy-compose and deploy-swarm.
      checks: |
        GET /api/items status=200 json.items exists max=300ms
        POST /api/echo body={"a": 1} status=201 json.a=1
        GET /admin status=401
        GET / contains='hello from'
      allow-failure: false                    # true: failed checks only warn
  # served-sha and served-version come from the service: pass them through
  # env:, never through ${{ }} inside run:.
  - if: failure() && steps.verify.outputs.result == 'old-version'
    env:
      SERVED_SHA: ${{ steps.verify.outputs.served-sha }}
    run: echo "still serving $SERVED_SHA; rolling back"
`,
	"guard": `# A manual deploy: a person picks the target and the commit (an older commit
# rolls back), types the confirmation and a reason.
on:
  workflow_dispatch:
    inputs:
      target:
        type: choice
        options: [staging, production]
      confirm:
        description: Type DEPLOY (for production, type production)
        required: true
      reason:
        description: Why (required for production)
      sha:
        description: Commit to deploy (default the branch head; an older one rolls back)
jobs:
  guard:
    runs-on: ubuntu-latest
    outputs:
      target: ${{ steps.guard.outputs.target }}
      sha-tag: ${{ steps.guard.outputs.sha-tag }}
      reason: ${{ steps.guard.outputs.reason }}
    steps:
      - id: guard
        uses: gantry-dev/gantry/actions/guard@v1
        with:
          target: ${{ inputs.target }}
          confirm: ${{ inputs.confirm }}
          confirm-target-for: production
          reason: ${{ inputs.reason }}
          sha: ${{ inputs.sha }}
  deploy:
    needs: guard
    runs-on: ubuntu-latest
    # Pair guard with a GitHub environment that has required reviewers
    # (Settings > Environments > production > Required reviewers): guard
    # refuses a mistyped request at once, then this job waits until a
    # reviewer approves, and the deployment is recorded on the environment.
    environment: ${{ needs.guard.outputs.target }}
    steps:
      - env:
          # Outputs and free text go through env:, never into run: with ${{ }}.
          REASON: ${{ needs.guard.outputs.reason }}
          SHA_TAG: ${{ needs.guard.outputs.sha-tag }}
        run: echo "deploying $SHA_TAG because $REASON"
`,
	"deploy-compose": `jobs:
  deploy:
    runs-on: ubuntu-latest
    environment: production          # required reviewers apply
    concurrency: deploy-production   # a second line of defence behind the host's lock
    permissions:
      contents: read
      deployments: write             # the deploy recorded as a GitHub Deployment (environment shop)
    steps:
      - uses: actions/checkout@v4    # the compose.yml is uploaded from the repository
      - id: deploy
        uses: gantry-dev/gantry/actions/deploy-compose@v1
        with:
          host: vm1.example.com
          user: deploy
          ssh-key: ${{ secrets.DEPLOY_SSH_KEY }}
          known-hosts: ${{ vars.VM1_KNOWN_HOSTS }}   # ssh-keyscan vm1.example.com
          project: shop
          images: web=ghcr.io/acme/shop@${{ needs.build.outputs.digest }}
          registry-username: ${{ github.actor }}
          registry-password: ${{ secrets.GITHUB_TOKEN }}
          url: https://shop.example.com/health
          checks: |
            GET /api/items status=200 json.items exists max=300ms
            exec web -- /app -selftest
      - if: failure()
        env: # outputs reach a script through env:, never through ${{ }} inside run:
          RESULT: ${{ steps.deploy.outputs.result }}
          PREVIOUS_SHA: ${{ steps.deploy.outputs.previous-sha }}
        run: echo "deploy $RESULT; the previous version ($PREVIOUS_SHA) is serving"
`,
	"rollback": `on:
  workflow_dispatch:
    inputs:
      to:
        description: previous, or the commit SHA to go back to
        default: previous
jobs:
  rollback:
    runs-on: ubuntu-latest
    environment: production
    permissions:
      deployments: write   # recorded as a GitHub Deployment; with no history on the host, previous comes from them
    steps:
      - uses: gantry-dev/gantry/actions/rollback@v1
        with:
          to: ${{ inputs.to }}
          host: vm1.example.com
          user: deploy
          ssh-key: ${{ secrets.DEPLOY_SSH_KEY }}
          known-hosts: ${{ vars.VM1_KNOWN_HOSTS }}
          project: shop
          url: https://shop.example.com/health
`,
	"deploy-ecs": `permissions:
  contents: read
  id-token: write      # GitHub OIDC -> AWS STS
  deployments: write   # the deploy recorded as a GitHub Deployment (environment api)
jobs:
  deploy:
    runs-on: ubuntu-latest
    needs: build      # build-push to ECR, outputs digest
    environment: production
    concurrency: ecs-production
    steps:
      - uses: actions/checkout@v4   # the task definition JSON lives in the repository
      - id: deploy
        uses: gantry-dev/gantry/actions/deploy-ecs@v1
        with:
          region: eu-west-3
          aws-role-arn: arn:aws:iam::123456789012:role/gantry-deploy
          cluster: prod
          service: api
          task-definition: deploy/api-task.json   # aws ecs describe-task-definition output works as is
          images: api=123456789012.dkr.ecr.eu-west-3.amazonaws.com/api@${{ needs.build.outputs.digest }}
          url: https://api.example.com/health
      - if: failure()
        env: # outputs reach a script through env:, never through ${{ }} inside run:
          RESULT: ${{ steps.deploy.outputs.result }}
          PREVIOUS: ${{ steps.deploy.outputs.previous-task-definition }}
        run: echo "deploy $RESULT; the service runs $PREVIOUS"
# ECS's native blue/green (the service needs a load balancer with
# advancedConfiguration: alternate target group, production and test listener rules):
#       strategy: blue-green      # or canary (canary-percent, step-bake-time) or linear
#       test-url: https://api.example.com:8443/health   # the test listener: verified before production traffic moves
#       bake-time: 5m             # url is verified here while the old revision still runs
`,
	"deploy-cloudrun": `permissions:
  contents: read
  id-token: write      # GitHub OIDC -> Workload Identity Federation
  deployments: write   # the deploy recorded as a GitHub Deployment (environment api)
jobs:
  deploy:
    runs-on: ubuntu-latest
    needs: build      # build-push to Artifact Registry, outputs digest
    environment: production
    concurrency: run-production
    steps:
      - id: run
        uses: gantry-dev/gantry/actions/deploy-cloudrun@v1
        with:
          gcp-project: my-project
          region: europe-west1
          service: api
          image: europe-docker.pkg.dev/my-project/images/api@${{ needs.build.outputs.digest }}
          gcp-workload-identity-provider: projects/123456789/locations/global/workloadIdentityPools/github/providers/gantry
          gcp-service-account: deployer@my-project.iam.gserviceaccount.com
          strategy: canary
          canary-steps: 10,50,100
          canary-interval: 2m
      - env: # outputs reach a script through env:, never through ${{ }} inside run:
          REVISION: ${{ steps.run.outputs.revision }}
          URL: ${{ steps.run.outputs.url }}
          TRAFFIC: ${{ steps.run.outputs.traffic }}
        run: echo "$REVISION serves $URL; traffic $TRAFFIC"
# A preview: the new revision gets no traffic, only a tag URL, checked before anyone sees it.
#       strategy: preview   -> outputs.tag-url
`,
	"deploy-swarm": `jobs:
  deploy:
    runs-on: ubuntu-latest
    environment: pre-production
    concurrency: swarm-preprod
    permissions:
      contents: read
      deployments: write   # the deploy recorded as a GitHub Deployment (environment shop)
    steps:
      - uses: actions/checkout@v4   # the stack file is uploaded from the repository
      - id: deploy
        uses: gantry-dev/gantry/actions/deploy-swarm@v1
        with:
          host: manager1.example.com
          user: deploy
          ssh-key: ${{ secrets.DEPLOY_SSH_KEY }}
          known-hosts: ${{ vars.MANAGER1_KNOWN_HOSTS }}   # ssh-keyscan manager1.example.com
          stack: shop
          compose-file: stack.yml
          images: web=ghcr.io/acme/shop@${{ needs.build.outputs.digest }}
          registry-username: ${{ github.actor }}
          registry-password: ${{ secrets.GITHUB_TOKEN }}
          update-order: start-first
          failure-action: rollback
          url: https://preprod.example.com/health
      - if: failure()
        env: # outputs reach a script through env:, never through ${{ }} inside run:
          RESULT: ${{ steps.deploy.outputs.result }}
          SERVICES: ${{ steps.deploy.outputs.services }}
        run: echo "deploy $RESULT; services $SERVICES"
`,
	"swarm-scale": `steps:
  - uses: gantry-dev/gantry/actions/swarm-scale@v1
    with:
      host: manager1.example.com
      user: deploy
      ssh-key: ${{ secrets.DEPLOY_SSH_KEY }}
      known-hosts: ${{ vars.MANAGER1_KNOWN_HOSTS }}
      stack: shop
      scale: |
        web=5
        worker=2
`,
	"loadtest": `on:
  workflow_dispatch:
    inputs:
      url: { description: "URL to load", required: true }
  pull_request:
permissions:
  contents: read
  pull-requests: write   # the verdict as one comment, updated by later runs
  actions: read          # gh run download of the baseline
jobs:
  load:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - name: The last green run's summary.json on main is the baseline
        env: { GH_TOKEN: "${{ github.token }}" }
        run: |
          id=$(gh run list --workflow "$GITHUB_WORKFLOW" --branch main --status success --limit 1 --json databaseId --jq '.[0].databaseId')
          if [ -n "$id" ]; then gh run download "$id" --name loadtest-report --dir baseline; fi
      - id: load
        uses: gantry-dev/gantry/actions/loadtest@v1
        with:
          script: load/checkout.js       # or url: + rate: + duration: for a smoke test
          env: |
            BASE_URL=${{ inputs.url || vars.STAGING_URL }}
            API_TOKEN=${{ secrets.LOAD_API_TOKEN }}
          thresholds: |
            http_req_duration:p(95)<300
            http_req_failed:rate<0.01
          baseline: baseline/summary.json  # missing on the first run: a warning, no comparison
          max-regression: p95=10%,error-rate=0.5pp
      - env: # outputs reach a script through env:, never through ${{ }} inside run:
          P95: ${{ steps.load.outputs.p95 }}
          VERDICT: ${{ steps.load.outputs.verdict }}
        run: echo "p95 $P95 ms, verdict $VERDICT"
`,
}
