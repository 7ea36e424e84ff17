//! The dashboard's handlers: each copies the status and the reload's state,
//! reads what its page shows from the store on the blocking pool (through the
//! server's own connection), and renders the page.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use axum::routing::get;
use bridge_core::ledger::{LedgerEntry, LedgerFilter};
use bridge_core::store::{LinkPage, Store, StoreResult};

use super::{
    LedgerForm, LinkView, LinksForm, Overview, render_dead_letters, render_ledger, render_link,
    render_links, render_overview,
};
use crate::server::AppState;

/// How many ledger entries and dead letters the overview shows.
const OVERVIEW_ENTRIES: usize = 20;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/links", get(links))
        .route("/links/{pair}/{incident}", get(link))
        .route("/ledger", get(ledger))
        .route("/dead-letters", get(dead_letters))
}

fn ledger_entries(store: &dyn Store, filter: &LedgerFilter) -> StoreResult<Vec<LedgerEntry>> {
    let mut entries = Vec::new();
    store.for_each_ledger_entry(filter, &mut |entry| {
        entries.push(entry);
        Ok(())
    })?;
    Ok(entries)
}

/// The pairs the forms offer: the configured ones, then any other the store knows of.
async fn pairs(app: &AppState) -> Vec<String> {
    let mut pairs: Vec<String> = app.status().pairs.iter().map(|p| p.pair.clone()).collect();
    if let Ok(counts) = app.read(|store| store.counts()).await {
        for (pair, _, _) in counts.links {
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
    }
    pairs
}

async fn overview(State(app): State<AppState>) -> Html<String> {
    let status = app.status();
    let reload = app.reload();
    let read = app
        .read(|store| {
            let counts = store.counts()?;
            let mut letters = store.dead_letters(None, None)?;
            letters.sort_by_key(|l| std::cmp::Reverse(l.last_failed));
            letters.truncate(OVERVIEW_ENTRIES);
            let newest = LedgerFilter {
                limit: Some(OVERVIEW_ENTRIES),
                ..LedgerFilter::default()
            };
            Ok((counts, letters, ledger_entries(store, &newest)?))
        })
        .await;
    let store = match &read {
        Ok((counts, letters, entries)) => Ok((counts, letters.as_slice(), entries.as_slice())),
        Err(e) => Err(e.as_str()),
    };
    Html(render_overview(&Overview {
        status: &status,
        store,
        reload: reload.failure.as_ref(),
        now: chrono::Utc::now(),
        backlogs: &bridge_core::engine::progress::backlogs(),
    }))
}

async fn links(
    State(app): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Html<String> {
    let form = LinksForm::from_query(&params);
    let reload = app.reload();
    let page: Result<LinkPage, String> = match form.to_query() {
        Ok(mut query) => {
            query.closed_when = reload.closed_when.clone();
            app.read(move |store| store.link_page(&query)).await
        }
        Err(e) => Err(e),
    };
    let pairs = pairs(&app).await;
    Html(render_links(
        &form,
        &pairs,
        page.as_ref().map_err(String::as_str),
        reload.failure.as_ref(),
        chrono::Utc::now(),
    ))
}

async fn link(
    State(app): State<AppState>,
    Path((pair, incident)): Path<(String, String)>,
) -> Html<String> {
    let reload = app.reload();
    let (p, i) = (pair.clone(), incident.clone());
    let read = app
        .read(move |store| {
            let link = store.link(&p, &i)?;
            let letter = store
                .dead_letters(Some(&p), None)?
                .into_iter()
                .find(|l| l.incident_id == i);
            let history = LedgerFilter {
                pair: Some(p.clone()),
                incident_id: Some(i.clone()),
                ..LedgerFilter::default()
            };
            Ok((link, letter, ledger_entries(store, &history)?))
        })
        .await;
    let now = chrono::Utc::now();
    Html(match &read {
        Ok((link, letter, history)) => render_link(&LinkView {
            pair: &pair,
            incident_id: &incident,
            link: link.as_ref(),
            dead_letter: letter.as_ref(),
            history,
            reload: reload.failure.as_ref(),
            now,
        }),
        Err(e) => super::render_error("Link", e, reload.failure.as_ref(), now),
    })
}

async fn ledger(
    State(app): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Html<String> {
    let form = LedgerForm::from_query(&params);
    let entries = match form.to_filter() {
        Ok(filter) => app.read(move |store| ledger_entries(store, &filter)).await,
        Err(e) => Err(e),
    };
    let pairs = pairs(&app).await;
    Html(render_ledger(
        &form,
        &pairs,
        entries.as_deref().map_err(String::as_str),
        app.reload().failure.as_ref(),
        chrono::Utc::now(),
    ))
}

async fn dead_letters(State(app): State<AppState>) -> Html<String> {
    let letters = app.read(|store| store.dead_letters(None, None)).await;
    Html(render_dead_letters(
        letters.as_deref().map_err(String::as_str),
        app.reload().failure.as_ref(),
        chrono::Utc::now(),
    ))
}
