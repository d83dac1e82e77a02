//! The long help of `serve` and `command`: every setting and every command,
//! one line each. README.md has the details; `tests/it/cli.rs` checks that
//! each name the README documents is listed here too.

/// Shown by `hookflow serve --help`.
pub const SETTINGS: &str = "\
Settings (environment; README.md \"Settings\" has the details):
  Server and storage
    HOOKFLOW_ADDR, HOOKFLOW_DATA_DIR, HOOKFLOW_BACKEND, HOOKFLOW_AWS_PREFIX   the options above
    HOOKFLOW_ADMIN_TOKEN            management token (16+ chars); generated into <data-dir>/admin-token if unset
    HOOKFLOW_ADMIN_TOKEN_SECRET     Lambda: Secrets Manager secret holding the admin token
    HOOKFLOW_PUBLIC_URL             base of webhookUrl (default: the request's Host)
    HOOKFLOW_TRUSTED_PROXIES        proxies whose X-Forwarded-For counts for allowedSources (none)
    HOOKFLOW_WAL_MAX_BYTES          SQLite WAL bound (64 MiB)
    HOOKFLOW_LOOKUP_CACHE_SECONDS   cache of webhook and listener lookups (10; 0 off)
    HOOKFLOW_LOG                    log filter (info)
  AWS shape (set by the SAM template, printed by `hookflow provision`)
    HOOKFLOW_WEBHOOKS_TABLE, HOOKFLOW_PIPELINES_TABLE, HOOKFLOW_EVENTS_TABLE,
    HOOKFLOW_OUTGOING_TABLE, HOOKFLOW_INVOCATIONS_TABLE, HOOKFLOW_QUEUE_URL,
    HOOKFLOW_PAYLOAD_BUCKET          the resources
    HOOKFLOW_AWS_TLS_ROOTS           Lambda: roots trusted for AWS calls: system (default) or amazon
    HOOKFLOW_DEAD_LETTER_QUEUE_URL   where given-up jobs go (optional)
    HOOKFLOW_QUEUE_RETENTION_SECONDS the job queue's retention (345600)
  Receive and results
    HOOKFLOW_RECEIVE_WAIT_MS        wait for listening pipelines before `processing` (1000)
    HOOKFLOW_RESULT_TTL_SECONDS     how long events and results stay pollable (3600)
    HOOKFLOW_EVENT_RETENTION_SECONDS how long events stay in the event log (259200)
    HOOKFLOW_POLL_DEFAULT_WAIT_MS   /result wait without maxWaitMs (10000)
    HOOKFLOW_POLL_MAX_WAIT_MS       cap on maxWaitMs (25000)
    HOOKFLOW_TRUSTED_PROXIES        proxies whose X-Forwarded-For counts for allowedSources (none)
  Limits of the front door
    HOOKFLOW_MAX_BODY_BYTES         largest body (4194304)
    HOOKFLOW_MAX_PIPELINE_BYTES     largest pipeline YAML (65536)
    HOOKFLOW_MAX_CONNECTIONS        connections at once (from the open-file limit)
    HOOKFLOW_IDLE_TIMEOUT_MS        time to send a request head (10000)
    HOOKFLOW_BODY_TIMEOUT_MS        time for a body to arrive (30000)
    HOOKFLOW_WRITE_TIMEOUT_MS       time an answer may stall (30000)
    HOOKFLOW_BODY_BUDGET_BYTES      body bytes in memory, all connections (33554432)
    HOOKFLOW_ANSWER_BUDGET_BYTES    large-answer bytes being written (33554432)
    HOOKFLOW_BUDGET_WAIT_MS         wait for budget before 503 server_busy (5000)
  Pipelines
    HOOKFLOW_USERS                  pipeline users: name=perm,perm;name=*
    HOOKFLOW_SMTP_URL               mail server of mail.send (unset: no mail)
    HOOKFLOW_SMTP_LOGIN_SECRET      Lambda: Secrets Manager secret with the SMTP login
    HOOKFLOW_MAIL_FROM              default sender (hookflow@localhost)
    HOOKFLOW_WORKER_CONCURRENCY     pipelines run at once (64; 0: no worker)
    HOOKFLOW_PIPELINE_TIMEOUT_MS    longest run (30000)
    HOOKFLOW_PIPELINE_BUDGET_BYTES  bytes one run's values may take (64 MiB)
    HOOKFLOW_VISIBILITY_TIMEOUT_SECONDS  how long a taken job stays hidden (180)
    HOOKFLOW_MAX_ATTEMPTS           deliveries before a failure is final (5)
    HOOKFLOW_RETRY_BASE_MS          first retry delay, doubled per attempt (1000)
  Outgoing webhooks
    HOOKFLOW_OUTGOING_ALLOW         ranges the SSRF guard lets through (none)
    HOOKFLOW_OUTGOING_CONNECT_TIMEOUT_MS  connect timeout (15000)
    HOOKFLOW_OUTGOING_TIMEOUT_MS    whole-call timeout (15000)
    HOOKFLOW_OUTGOING_MAX_RESPONSE_BYTES  largest answer read (1048576)
    HOOKFLOW_OUTGOING_RETRY_SCHEDULE      retries of async sends (5s,5m,30m,2h,5h,10h,10h)
    HOOKFLOW_OUTGOING_SECRET_GRACE_SECONDS  a replaced secret keeps signing (86400)
    HOOKFLOW_INVOCATION_TTL_SECONDS how long invocation records are kept (259200)";

/// Shown by `hookflow command --help`.
pub const COMMANDS: &str = "\
Commands (README.md \"API reference\" has their parameters):
  webhook.put       create or edit a webhook: eventKey=… [uuid=… description=… enabled=… payloadType=… maxPayloadLength=…]
  webhook.get       all webhooks, or uuid=…
  webhook.delete    uuid=…
  webhook.rotate    a new token: uuid=… [graceSeconds=…] (the old one works that long; 86400)
  pipeline.put      name=… -f pipeline.yaml
  pipeline.get      all pipelines, or name=…
  pipeline.delete   name=…
  pipeline.test     name=… or -f pipeline.yaml; correlationId=… or sample='{…}' [sideEffects=true]
  outgoing.put      -f registration.json
  outgoing.get      all registrations, or id=…
  outgoing.delete   id=…
  webhook.send      -f trigger.json (an outgoing webhook call)
  invocation.get    referenceId=…, or webhookId=… [limit=…]
  invocation.resend referenceId=… (the same request again, as a new invocation)
  deadletter.list   the jobs given up on [limit=…]
  deadletter.redrive id=…, or all of them (at most 100 a call)
  deadletter.delete id=…
  queue.get         jobs in the queue and dead letters, counted now
  event.list        newest first: [uuid=… | eventKey=…] [status=ok|error|processing] [since=… until=…] [limit=…] [cursor=…]
  event.get         correlationId=… (the event and each pipeline's outcome)
  event.replay      correlationId=… [pipeline=…] (runs it again as a new event)

Examples:
  hookflow command webhook.put eventKey=webhook.lead.created
  hookflow command pipeline.put name=hello -f hello.yaml";
