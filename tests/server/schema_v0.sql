-- The schema of the first release (before namespaces), as metadata.create_all made it.
CREATE TABLE jobs (
	seq INTEGER NOT NULL,
	id VARCHAR(36) NOT NULL,
	type VARCHAR(100) NOT NULL,
	state VARCHAR(16) NOT NULL,
	priority INTEGER NOT NULL,
	params JSON NOT NULL,
	meta JSON NOT NULL,
	result JSON,
	error JSON,
	progress FLOAT,
	progress_message VARCHAR,
	attempts INTEGER NOT NULL,
	max_attempts INTEGER NOT NULL,
	timeout_s FLOAT,
	total_timeout_s FLOAT,
	retry JSON NOT NULL,
	worker_type VARCHAR(8),
	labels TEXT NOT NULL,
	idempotency_key VARCHAR(200),
	inputs JSON NOT NULL,
	outputs JSON NOT NULL,
	created_at FLOAT NOT NULL,
	started_at FLOAT,
	attempt_started_at FLOAT,
	ended_at FLOAT,
	available_at FLOAT,
	lease_expires_at FLOAT,
	lease_token VARCHAR(64),
	worker_id VARCHAR(36),
	cancel_requested BOOLEAN NOT NULL,
	PRIMARY KEY (seq),
	UNIQUE (id),
	UNIQUE (idempotency_key)
);
CREATE INDEX ix_jobs_state_available ON jobs (state, available_at);
CREATE INDEX ix_jobs_claim ON jobs (state, priority DESC, seq);
CREATE INDEX ix_jobs_state_lease ON jobs (state, lease_expires_at);
CREATE INDEX ix_jobs_type_state ON jobs (type, state);
CREATE TABLE job_events (
	id INTEGER NOT NULL,
	job_id VARCHAR(36) NOT NULL,
	at FLOAT NOT NULL,
	kind VARCHAR(40) NOT NULL,
	attempt INTEGER,
	worker_id VARCHAR(36),
	detail VARCHAR,
	PRIMARY KEY (id)
);
CREATE INDEX ix_job_events_job_id ON job_events (job_id);
CREATE TABLE api_keys (
	id VARCHAR(36) NOT NULL,
	prefix VARCHAR(16) NOT NULL,
	hash VARCHAR(64) NOT NULL,
	role VARCHAR(16) NOT NULL,
	name VARCHAR,
	created_at FLOAT NOT NULL,
	last_used_at FLOAT,
	revoked_at FLOAT,
	PRIMARY KEY (id),
	UNIQUE (hash)
);
CREATE TABLE workers (
	id VARCHAR(36) NOT NULL,
	name VARCHAR,
	worker_type VARCHAR(8) NOT NULL,
	task_types JSON NOT NULL,
	labels JSON NOT NULL,
	max_concurrent INTEGER NOT NULL,
	version VARCHAR,
	host VARCHAR,
	registered_at FLOAT NOT NULL,
	last_seen_at FLOAT NOT NULL,
	draining BOOLEAN NOT NULL,
	deregistered_at FLOAT,
	key_id VARCHAR(36),
	PRIMARY KEY (id)
);
CREATE TABLE job_types (
	name VARCHAR(100) NOT NULL,
	first_seen_at FLOAT NOT NULL,
	PRIMARY KEY (name)
);
CREATE TABLE uploads (
	id VARCHAR(36) NOT NULL,
	name VARCHAR NOT NULL,
	blob_key VARCHAR NOT NULL,
	size INTEGER NOT NULL,
	sha256 VARCHAR(64) NOT NULL,
	created_at FLOAT NOT NULL,
	PRIMARY KEY (id)
);
