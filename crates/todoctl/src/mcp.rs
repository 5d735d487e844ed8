//! `todoctl mcp`: the task tools for assistants that start a process and talk MCP over its
//! standard input and output (desktop assistants). It defines no tool of its own: it relays
//! `tools/list` and `tools/call` to task-api's streamable HTTP endpoint (`$TODO_API_URL/mcp`)
//! with the user's token, so both transports run exactly the same tools, validation and events.
//! Both sides are the official Rust SDK (rmcp): a client to task-api, a server on stdio.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ResultType, ServerCapabilities, ServerConfig,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt};

use crate::cli::api::{self, CliError, CliResult};

/// Relays the tools of task-api's `/mcp` to the assistant on stdio.
struct ToolRelay {
    upstream: Peer<RoleClient>,
    instructions: Option<String>,
}

fn upstream_error(e: rmcp::ServiceError) -> ErrorData {
    match e {
        rmcp::ServiceError::McpError(e) => e,
        other => ErrorData::internal_error(format!("task-api's /mcp failed: {other}"), None),
    }
}

impl ServerHandler for ToolRelay {
    fn get_info(&self) -> ServerConfig {
        let info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("todoctl", env!("CARGO_PKG_VERSION")));
        match &self.instructions {
            Some(i) => info.with_instructions(i.clone()),
            None => info,
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // The upstream answer may come from an older protocol revision than the assistant
        // negotiated here: mark it complete, as 2026-07-28 requires.
        let mut result = self
            .upstream
            .list_tools(request)
            .await
            .map_err(upstream_error)?;
        result.result_type = Some(ResultType::COMPLETE);
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let mut response = self
            .upstream
            .call_tool_once(request)
            .await
            .map_err(upstream_error)?;
        if let CallToolResponse::Complete(result) = &mut response {
            result.result_type = Some(ResultType::COMPLETE);
        }
        Ok(response)
    }
}

/// Serve the tools on stdio until the assistant closes it.
pub async fn serve(api_url: Option<&str>) -> CliResult<()> {
    let base = api::api_url(api_url);
    let token = api::token()?;
    let endpoint = format!("{base}/mcp");
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(endpoint.as_str()).auth_header(token),
    );
    let client = ()
        .serve(transport)
        .await
        .map_err(|e| CliError(format!("cannot connect to {endpoint}: {e}")))?;
    let instructions = client
        .peer_info()
        .and_then(|info| info.instructions.clone());
    let relay = ToolRelay {
        upstream: client.peer().clone(),
        instructions,
    };
    let server = relay
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| CliError(format!("starting the stdio server: {e}")))?;
    let outcome = server.waiting().await;
    let _ = client.cancel().await;
    outcome
        .map(|_| ())
        .map_err(|e| CliError(format!("stdio server stopped: {e}")))
}
