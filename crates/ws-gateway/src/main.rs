use service_kit::config::exit_on_error;
use ws_gateway::{config::Config, startup::Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("ws-gateway");
    let config = exit_on_error(Config::from_env());
    Application::build(config).await?.run_until_stopped().await
}
