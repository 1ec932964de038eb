//! The simulated Help Center: a few seeded articles and Zendesk's article
//! search (`GET /api/v2/help_center/articles/search?query=`), so a drafter
//! can be tested citing real-looking knowledge base content.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Shared;
use crate::api::error;

/// A Help Center article as the simulator stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimArticle {
    pub id: u64,
    pub title: String,
    /// Plain text (served as `body` wrapped in a paragraph).
    pub body: String,
    pub locale: String,
}

/// Article ids, apart from the other id ranges and above 2^53.
pub(crate) const FIRST_ARTICLE_ID: u64 = 30_000_000_000_000_001;

/// Seeded in every simulator.
const SEEDED: [(&str, &str); 5] = [
    (
        "Resetting your password",
        "To reset your password, open the sign-in page, choose Forgot password and follow the link we email you. The link expires after 24 hours.",
    ),
    (
        "Printer safety: smoke, sparks or fire",
        "If your printer smokes, sparks or catches fire, unplug it at once, keep away and call emergency services. Do not open the case. We replace any printer that overheated under warranty.",
    ),
    (
        "Requesting a refund",
        "Refunds are available within 30 days of purchase. Reply to your order confirmation or open a ticket with the order number; refunds reach your card in 5 to 10 business days.",
    ),
    (
        "Shipping times and tracking",
        "Orders ship within 2 business days. Tracking links are emailed when the parcel leaves our warehouse; international delivery takes 7 to 14 days.",
    ),
    (
        "Updating billing details",
        "Billing address and card details can be changed under Account, Billing. Changes apply to the next invoice.",
    ),
];

pub(crate) fn seeded() -> Vec<SimArticle> {
    SEEDED
        .iter()
        .enumerate()
        .map(|(i, (title, body))| SimArticle {
            id: FIRST_ARTICLE_ID + i as u64,
            title: (*title).to_owned(),
            body: (*body).to_owned(),
            locale: "en-us".to_owned(),
        })
        .collect()
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

/// How many distinct query words occur in the title or body; the title
/// counts twice.
fn score(article: &SimArticle, query: &[String]) -> usize {
    let title = words(&article.title);
    let body = words(&article.body);
    query
        .iter()
        .map(|q| {
            let t = title.iter().any(|w| w.starts_with(q.as_str()));
            let b = body.iter().any(|w| w.starts_with(q.as_str()));
            2 * usize::from(t) + usize::from(b)
        })
        .sum()
}

/// The first body sentence containing a query word, the word in `<em>`, as
/// Zendesk highlights snippets.
fn snippet(article: &SimArticle, query: &[String]) -> String {
    let sentence = article
        .body
        .split_inclusive(". ")
        .find(|s| {
            words(s)
                .iter()
                .any(|w| query.iter().any(|q| w.starts_with(q.as_str())))
        })
        .unwrap_or(&article.body);
    sentence
        .split(' ')
        .map(|token| {
            let bare = token.to_lowercase();
            if query.iter().any(|q| bare.starts_with(q.as_str())) {
                format!("<em>{token}</em>")
            } else {
                token.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end()
        .to_owned()
}

pub(crate) fn article_json(base_url: &str, a: &SimArticle) -> Value {
    json!({
        "id": a.id,
        "url": format!("{base_url}/api/v2/help_center/{}/articles/{}.json", a.locale, a.id),
        "html_url": format!("{base_url}/hc/{}/articles/{}", a.locale, a.id),
        "title": a.title,
        "body": format!("<p>{}</p>", a.body),
        "locale": a.locale,
        "draft": false,
        "result_type": "article",
    })
}

/// `GET /api/v2/help_center/articles/search?query=&per_page=`.
pub(crate) async fn search(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(query) = q.get("query").map(|s| s.trim()).filter(|s| !s.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidSearchParameters",
            "query is required",
        );
    };
    let per_page = match q.get("per_page").map(|v| v.parse::<usize>()) {
        None => 25,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidPaginationParameter",
                "per_page must be between 1 and 100",
            );
        }
    };
    let terms = words(query);
    let mut hits: Vec<(usize, SimArticle)> = shared.with_store(|s| {
        s.articles
            .iter()
            .map(|a| (score(a, &terms), a.clone()))
            .filter(|(score, _)| *score > 0)
            .collect()
    });
    hits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
    let count = hits.len();
    let results: Vec<Value> = hits
        .iter()
        .take(per_page)
        .map(|(_, a)| {
            let mut v = article_json(&shared.base_url, a);
            v["snippet"] = Value::String(snippet(a, &terms));
            v
        })
        .collect();
    axum::Json(json!({
        "results": results,
        "page": 1,
        "per_page": per_page,
        "page_count": count.div_ceil(per_page),
        "count": count,
        "next_page": null,
        "previous_page": null,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_ranks_title_matches_first_and_highlights() {
        let articles = seeded();
        let q = words("my printer is on fire");
        let best = articles
            .iter()
            .max_by_key(|a| score(a, &q))
            .map(|a| a.title.clone());
        assert_eq!(
            best.as_deref(),
            Some("Printer safety: smoke, sparks or fire")
        );
        assert_eq!(score(&articles[4], &q), 0);
        let s = snippet(&articles[1], &q);
        assert!(s.contains("<em>printer</em>"), "{s}");
    }
}
