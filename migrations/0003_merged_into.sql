-- 0003_merged_into: where a merged incident went. When Defender merges ("redirects")
-- an incident into another, its link is kept, marked `merged`, and records the
-- surviving incident here, so auditors and `itsm-bridge links` can follow it.

ALTER TABLE links ADD COLUMN merged_into TEXT;
