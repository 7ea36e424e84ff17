//! Jira Cloud. (Being written.)
