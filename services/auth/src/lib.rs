//! Issues HS256 JWTs for Zendesk widget and messaging visitors
