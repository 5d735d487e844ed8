//! A real HTTP server that receives webhooks and records them with their signature headers.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

#[derive(Debug, Clone)]
pub struct Received {
    pub body: Vec<u8>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
}

pub struct WebhookReceiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    store: web::Data<Arc<Mutex<Vec<Received>>>>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    store.lock().unwrap().push(Received {
        body: body.to_vec(),
        timestamp: header(service_kit::webhook::TIMESTAMP_HEADER),
        signature: header(service_kit::webhook::SIGNATURE_HEADER),
    });
    HttpResponse::NoContent().finish()
}

impl WebhookReceiver {
    pub fn start() -> Self {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into())
    }

    /// A receiver on another address of this machine, e.g. the container network's gateway,
    /// where services running in containers reach the host.
    pub fn start_on(address: std::net::IpAddr) -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let data = web::Data::new(received.clone());
        let listener = std::net::TcpListener::bind((address, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://{}/hook", std::net::SocketAddr::new(address, port)),
            received,
            handle,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
