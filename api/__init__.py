"""The JSON API and the Marketplace webhook (the purchase pages a Marketplace link opens are the portal's)."""
