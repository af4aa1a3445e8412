# The seed's Python example. The CA comes from REQUESTS_CA_BUNDLE.
import os, requests

base = os.environ.get("NUVLYX_BASE_URL", "https://api.nuvlyx.com")
r = requests.get(
    f"{base}/api/v1/external/orders",
    headers={"Authorization": f"Bearer {os.environ['NUVLYX_TOKEN']}"},
)
orders = r.json()
print(r.status_code, orders)
