//! Cross-service tests live beside this file as `[[test]]` targets.
