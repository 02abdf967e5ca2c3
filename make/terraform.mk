# Terraform / OpenTofu: tool install and static checks (issue 4). Included by the Makefile.
# The same checks run inside `make test` through tests/terraform.

TOFU    ?= .tools/bin/tofu
CHECKOV ?= .venv-tools/bin/checkov
# A user's Terraform CLI configuration has no say in formatting or linting.
TF_ENV  := env -u TF_CLI_CONFIG_FILE TF_IN_AUTOMATION=1

.PHONY: tools tf-fmt tf-check tf-docs

tools: $(UV) ## Install the pinned lint tools (.venv-tools, .tools/bin); see scripts/setup_tools.sh
	scripts/setup_tools.sh

# tests/terraform runs tofu and checkov itself; `make test` installs them first.
TEST_PREREQS += tools

tf-fmt: tools ## Rewrite terraform/ in canonical format
	$(TF_ENV) $(TOFU) fmt -recursive terraform

tf-check: tools ## tofu fmt -check and checkov over terraform/
	$(TF_ENV) $(TOFU) fmt -check -recursive -diff terraform
	$(TF_ENV) $(CHECKOV) --config-file .checkov.yaml --directory terraform --framework terraform --compact --quiet

tf-docs: ## Regenerate the Inputs/Outputs tables of the Terraform READMEs
	$(RUN) python -m tests.terraform.tfdocs
