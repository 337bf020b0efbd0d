"""Load generator: raw asyncio WebSocket clients spread over worker processes."""
