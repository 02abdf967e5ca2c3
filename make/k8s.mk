# Kubernetes packaging (issue 3): images, Helm chart, kind/minikube clusters, offline render and validation.
# Pins: k8s/versions.env. Docs: docs/kubernetes.md, k8s/README.md, helm/tributary/README.md.

include k8s/versions.env
IMAGE_TAG ?= 0.1.0
IMAGE_PREFIX ?= tributary
PROFILE ?=

.PHONY: k8s-tools render helm-docs kind-up minikube-up

# tests/k8s and tests/helm run the pinned tools; `make test` installs them first.
TEST_PREREQS += k8s-tools

k8s-tools: ## install helm, the spark- and prometheus-operator modules, kubernetes-validate, hadolint, checkov
	@scripts/setup_tools.sh lint-venv helm spark-operator prometheus-operator

render: setup k8s-tools ## write build/rendered/<PROFILE>/ (kind|minikube|eks|gke; default all): chart + SparkApplications
	$(RUN) python scripts/render_k8s.py $(if $(PROFILE),--profile $(PROFILE))

helm-docs: setup ## regenerate the values table of helm/tributary/README.md from values.yaml's `# --` comments
	$(RUN) python scripts/helm_docs.py

kind-up: render docker-images ## kind cluster with a tainted "gpu" node; load images; install CRDs, chart; trigger fraud_pipeline
	@k8s/kind-up.sh

minikube-up: render docker-images ## the same on a three-node minikube profile
	@k8s/minikube.sh
