# Two commands: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# A websocket message over this many bytes closes the socket with code 1009 (docs/protocol.md); the largest
# frame the protocol allows (100,000 characters of text, escaped as JSON) fits well within it.
WS_MAX_MESSAGE_BYTES ?= 1048576
# uvicorn, as production runs it (docs/deploy.md; tests/cluster.py starts every test server with the same):
# websockets' sans-I/O protocol with the message cap, no per-message compression (frames are small deltas), the
# lifespan protocol that config/asgi.py uses at start and to drain replies at shutdown (and that must not fail
# silently), and at most 10 s of waiting for HTTP requests in flight after SIGTERM before the replies drain.
SERVER_FLAGS := --ws websockets-sansio --ws-max-size $(WS_MAX_MESSAGE_BYTES) --ws-per-message-deflate false \
	--lifespan on --timeout-graceful-shutdown 10
# The client's address and scheme come from X-Forwarded-For and X-Forwarded-Proto only when TRUSTED_PROXY_IPS
# (comma-separated, read by config/settings.py too) names the proxies that set them. uvicorn's own default
# trusts them from 127.0.0.1, so anything on this machine could forge its address in the audit log.
PROXY_FLAGS := $(if $(TRUSTED_PROXY_IPS),--proxy-headers --forwarded-allow-ips $(TRUSTED_PROXY_IPS),--no-proxy-headers)

.PHONY: run test install migrate offline-model clean

$(BIN)/.installed: requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	touch $@

install: $(BIN)/.installed

migrate: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py streams_recover

run: install
	$(BIN)/python manage.py serve_prepare
	@echo ""
	@echo "  Claude chat is starting on http://$(HOST):$(PORT)/"
	@echo "  Model: $$( [ -n "$$ANTHROPIC_API_KEY$$ANTHROPIC_API_KEY_FILE" ] && echo 'Anthropic API' || echo 'offline model (set ANTHROPIC_API_KEY for the real API)')"
	@echo "  Sign up in the browser (without EMAIL_URL the sign-up link is printed here), or create an admin with: $(BIN)/python manage.py createsuperuser"
	@echo "  Admin: http://$(HOST):$(PORT)/admin/"
	@echo ""
	@# The batch worker (half-price replies, docs/batches.md) runs beside the server and stops with it.
	$(BIN)/python manage.py batches_work & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	DJANGO_BIND_HOST=$(HOST) OFFLINE_MODEL_TOKENS_PER_SECOND=$${OFFLINE_MODEL_TOKENS_PER_SECOND:-60} $(BIN)/uvicorn --host $(HOST) \
		--port $(PORT) $(SERVER_FLAGS) $(PROXY_FLAGS) config.asgi:application

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

offline-model: install
	$(BIN)/python manage.py serve_offline_model

clean:
	rm -rf $(VENV) staticfiles
