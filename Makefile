.PHONY: setup demo test

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/nnLandmark_demo --workdir nnlandmark_demo

test:
	EXTRAS=test,slicer bash scripts/setup.sh
	.venv/bin/python -m pytest -q --durations=15
