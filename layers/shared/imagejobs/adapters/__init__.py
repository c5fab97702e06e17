"""The adapters: the world behind the application's ports (DynamoDB, S3, SQS, Step Functions,
EventBridge, the provider over httpx, webhook delivery, logs and metrics). They import the domain
and their SDKs, never the application or the edge."""
