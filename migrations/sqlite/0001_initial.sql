-- Core schema: chats, posts, participants, tombstones, the action ledger, adapter state,
-- runtime switches and the audit trail. Every chat-scoped table carries chat_id.

CREATE TABLE chats (
    chat_id     TEXT PRIMARY KEY,
    hashtag     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE posts (
    id              INTEGER PRIMARY KEY,
    chat_id         TEXT NOT NULL REFERENCES chats (chat_id),
    platform        TEXT NOT NULL,
    remote_id       TEXT NOT NULL,
    version         TEXT,
    author_id       TEXT NOT NULL,
    author_handle   TEXT NOT NULL,
    author_name     TEXT,
    text            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    edited_at       TEXT,
    parent_id       TEXT,
    parent_version  TEXT,
    root_id         TEXT,
    root_version    TEXT,
    quoted_id       TEXT,
    hashtags        TEXT NOT NULL DEFAULT '',
    mentions        TEXT NOT NULL DEFAULT '',
    links           TEXT NOT NULL DEFAULT '',
    language        TEXT,
    url             TEXT,
    is_own          INTEGER NOT NULL DEFAULT 0,
    mentions_host   INTEGER NOT NULL DEFAULT 0,
    is_bot          INTEGER NOT NULL DEFAULT 0,
    raw             TEXT,
    UNIQUE (chat_id, platform, remote_id)
);

CREATE INDEX posts_by_time ON posts (chat_id, created_at);

CREATE INDEX posts_by_author ON posts (chat_id, platform, author_id);

CREATE INDEX posts_by_parent ON posts (chat_id, platform, parent_id);

-- A deletion seen before (or after) its post: a late-arriving post that was already deleted
-- must never be stored.
CREATE TABLE tombstones (
    chat_id     TEXT NOT NULL,
    platform    TEXT NOT NULL,
    remote_id   TEXT NOT NULL,
    deleted_at  TEXT NOT NULL,
    PRIMARY KEY (chat_id, platform, remote_id)
);

CREATE TABLE participants (
    chat_id         TEXT NOT NULL,
    platform        TEXT NOT NULL,
    author_id       TEXT NOT NULL,
    handle          TEXT NOT NULL,
    first_seen_at   TEXT NOT NULL,
    first_post_id   TEXT,
    opted_out       INTEGER NOT NULL DEFAULT 0,
    blocked         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, platform, author_id)
);

CREATE TABLE actions (
    id              INTEGER PRIMARY KEY,
    chat_id         TEXT NOT NULL,
    key             TEXT NOT NULL UNIQUE,
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
    updated_at      TEXT NOT NULL
);

CREATE INDEX actions_queue ON actions (platform, state, id);

CREATE INDEX actions_by_target ON actions (chat_id, platform, target_id);

CREATE TABLE action_transitions (
    id          INTEGER PRIMARY KEY,
    action_id   INTEGER NOT NULL REFERENCES actions (id) ON DELETE CASCADE,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    at          TEXT NOT NULL,
    detail      TEXT
);

CREATE INDEX transitions_by_action ON action_transitions (action_id);

CREATE TABLE adapter_state (
    chat_id     TEXT NOT NULL,
    platform    TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (chat_id, platform, key)
);

-- Runtime switches a facilitator flips (kill switch, per-purpose modes).
CREATE TABLE switches (
    chat_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (chat_id, name)
);

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    chat_id     TEXT NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    what        TEXT NOT NULL,
    detail      TEXT
);
