-- Facilitation: conversation grouping on posts, chat sessions and their questions, the
-- safety queue (flags attach to posts, never to a person), fair-repost tallies and welcomes.

ALTER TABLE posts ADD COLUMN thread_root TEXT;

ALTER TABLE posts ADD COLUMN question_tag INTEGER;

ALTER TABLE posts ADD COLUMN question_n INTEGER;

ALTER TABLE posts ADD COLUMN session_id TEXT;

-- ok, crisis, abuse or spam: the safety step's verdict on this post.
ALTER TABLE posts ADD COLUMN triage TEXT;

-- Why the post was or was not amplified, for the facilitator.
ALTER TABLE posts ADD COLUMN note TEXT;

CREATE INDEX posts_by_root ON posts (chat_id, platform, thread_root);

CREATE INDEX posts_by_quoted ON posts (chat_id, platform, quoted_id);

CREATE INDEX posts_by_session ON posts (chat_id, session_id, question_n);

CREATE TABLE chat_sessions (
    chat_id         TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    starts_at       TEXT NOT NULL,
    ends_at         TEXT NOT NULL,
    closes_at       TEXT NOT NULL,
    zone            TEXT NOT NULL,
    topic           TEXT NOT NULL DEFAULT '',
    fill_done_at    TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (chat_id, session_id)
);

CREATE TABLE session_questions (
    chat_id         TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    n               INTEGER NOT NULL,
    text            TEXT NOT NULL,
    scheduled_at    TEXT NOT NULL,
    PRIMARY KEY (chat_id, session_id, n)
);

-- The safety queue. A flag names a post (platform + remote id), never an author: X's policy
-- forbids inferring or storing health information about a person. Flags expire.
CREATE TABLE safety_flags (
    id              INTEGER PRIMARY KEY,
    chat_id         TEXT NOT NULL,
    platform        TEXT NOT NULL,
    remote_id       TEXT NOT NULL,
    session_id      TEXT,
    category        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    score           REAL NOT NULL DEFAULT 0,
    signpost_key    TEXT,
    state           TEXT NOT NULL DEFAULT 'open',
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    handled_at      TEXT,
    UNIQUE (chat_id, platform, remote_id, category)
);

CREATE INDEX flags_open ON safety_flags (chat_id, state, expires_at);

-- One row per post we decided to repost: the fairness tally per session and author.
CREATE TABLE session_reposts (
    chat_id         TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    platform        TEXT NOT NULL,
    author_id       TEXT NOT NULL,
    remote_id       TEXT NOT NULL,
    round           INTEGER NOT NULL,
    decided_at      TEXT NOT NULL,
    PRIMARY KEY (chat_id, platform, remote_id)
);

CREATE INDEX session_reposts_by_author ON session_reposts (chat_id, session_id, platform, author_id);

-- First-timer welcomes: at most one per platform identity, ever.
CREATE TABLE welcomes (
    chat_id         TEXT NOT NULL,
    platform        TEXT NOT NULL,
    author_id       TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    remote_id       TEXT NOT NULL,
    decided_at      TEXT NOT NULL,
    PRIMARY KEY (chat_id, platform, author_id)
);

CREATE INDEX welcomes_by_session ON welcomes (chat_id, session_id, platform);
