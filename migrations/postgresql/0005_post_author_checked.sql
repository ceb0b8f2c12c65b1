-- Whether the platform told us if a post's author is automated. 0 when the adapter's lookup of
-- the author's labels failed: such a post is never amplified, in the live hour nor in the
-- fair second round of reposts that reads the stored posts.

ALTER TABLE posts ADD COLUMN author_checked INTEGER NOT NULL DEFAULT 1;
