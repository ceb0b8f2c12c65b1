-- Idempotency keys are unique per chat, not across the deployment: two chats with a session on
-- the same date and platform each get their own question:<date>:<n>:<platform>.
-- SQLite cannot drop a UNIQUE constraint, so both ledger tables are rebuilt; the child table
-- goes first so dropping the parent cascades into nothing.

CREATE TABLE actions_v4 (
    id              INTEGER PRIMARY KEY,
    chat_id         TEXT NOT NULL,
    key             TEXT NOT NULL,
    platform        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL,
    mode            TEXT NOT NULL,
    reason          TEXT NOT NULL,
    target_id       TEXT,
    not_after       TEXT,
    not_before      TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    remote_id       TEXT,
    detail          TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (chat_id, key)
);

INSERT INTO actions_v4 SELECT id, chat_id, key, platform, kind, purpose, payload, state, mode,
    reason, target_id, not_after, not_before, attempts, remote_id, detail, created_at,
    updated_at FROM actions;

CREATE TABLE action_transitions_v4 (
    id          INTEGER PRIMARY KEY,
    action_id   INTEGER NOT NULL REFERENCES actions_v4 (id) ON DELETE CASCADE,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    at          TEXT NOT NULL,
    detail      TEXT
);

INSERT INTO action_transitions_v4 SELECT id, action_id, from_state, to_state, at, detail
    FROM action_transitions;

DROP TABLE action_transitions;

DROP TABLE actions;

ALTER TABLE actions_v4 RENAME TO actions;

ALTER TABLE action_transitions_v4 RENAME TO action_transitions;

CREATE INDEX actions_queue ON actions (platform, state, id);

CREATE INDEX actions_by_target ON actions (chat_id, platform, target_id);

CREATE INDEX actions_by_state ON actions (chat_id, state, id);

CREATE INDEX actions_by_update ON actions (chat_id, updated_at, id);

CREATE INDEX transitions_by_action ON action_transitions (action_id);
