-- Whether the platform deleted the post's replies with it (a Facebook post takes its comments,
-- a comment its replies). A reply that arrives after such a deletion (a webhook retried late)
-- is then kept out too.

ALTER TABLE tombstones ADD COLUMN with_replies INTEGER NOT NULL DEFAULT 0;
