//! task-api over REST as the signed-in user, and where the token is kept: `credentials.json` in
//! the user's config folder (`$XDG_CONFIG_HOME/todoctl`, usually `~/.config/todoctl`), readable
//! by the user alone (mode 0600). `TODO_TOKEN` and `TODO_API_URL` take precedence over it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8000";

/// A failure, as one line for the terminal.
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type CliResult<T> = Result<T, CliError>;

pub fn fail<T>(message: impl Into<String>) -> CliResult<T> {
    Err(CliError(message.into()))
}

/// What `todoctl login` keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub api_url: String,
    pub email: String,
    pub access_token: String,
}

pub fn credentials_path() -> CliResult<PathBuf> {
    dirs::config_dir()
        .map(|d| d.join("todoctl").join("credentials.json"))
        .ok_or_else(|| CliError("no config folder (set HOME or XDG_CONFIG_HOME)".into()))
}

pub fn load_credentials() -> Option<Credentials> {
    let text = std::fs::read_to_string(credentials_path().ok()?).ok()?;
    serde_json::from_str(&text).ok()
}

/// Write the credentials, readable and writable by the user alone.
pub fn store_credentials(c: &Credentials) -> CliResult<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = credentials_path()?;
    let shown = path.display().to_string();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CliError(format!("creating {shown}: {e}")))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| CliError(format!("writing {shown}: {e}")))?;
    // A file made before with wider permissions keeps them through open(): narrow them.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| CliError(format!("restricting {shown}: {e}")))?;
    let text = serde_json::to_string_pretty(c).unwrap_or_default();
    file.write_all(text.as_bytes())
        .map_err(|e| CliError(format!("writing {shown}: {e}")))?;
    Ok(path)
}

/// The API base URL: `--api-url`/`TODO_API_URL`, else the one logged in to, else the local one.
pub fn api_url(given: Option<&str>) -> String {
    given
        .map(str::to_owned)
        .or_else(|| load_credentials().map(|c| c.api_url))
        .unwrap_or_else(|| DEFAULT_API_URL.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// The bearer token: `TODO_TOKEN`, else the stored one.
pub fn token() -> CliResult<String> {
    if let Ok(t) = std::env::var("TODO_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_owned());
    }
    load_credentials()
        .map(|c| c.access_token)
        .ok_or_else(|| CliError("not logged in: run `todoctl login` (or set TODO_TOKEN)".into()))
}

/// A problem document (or any error answer) as one line.
fn problem_line(status: reqwest::StatusCode, body: &Value) -> String {
    let title = body["title"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| status.to_string());
    let mut line = match body["detail"].as_str() {
        Some(d) => format!("{title}: {d}"),
        None => title,
    };
    let fields: Vec<String> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{} {}",
                e["field"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    if !fields.is_empty() {
        line.push_str(&format!(" ({})", fields.join("; ")));
    }
    if status == reqwest::StatusCode::UNAUTHORIZED {
        line.push_str(" — run `todoctl login`");
    }
    line
}

/// REST calls to one service as one user.
pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> CliResult<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).query(query);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let response = req
            .send()
            .await
            .map_err(|e| CliError(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| CliError(format!("reading the answer of {url}: {e}")))?;
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            Ok(body)
        } else {
            fail(problem_line(status, &body))
        }
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> CliResult<Value> {
        self.call(reqwest::Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> CliResult<Value> {
        self.call(reqwest::Method::POST, path, &[], body).await
    }

    pub async fn delete(&self, path: &str) -> CliResult<Value> {
        self.call(reqwest::Method::DELETE, path, &[], None).await
    }
}
