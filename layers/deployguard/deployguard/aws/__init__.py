"""AWS adapters: each takes an injected boto3 client and translates errors into domain exceptions."""
