//! Microsoft Graph security incidents. (Being written.)
