// the web page's script (ws-gateway issue)
