output "url" {
  description = "Base URL of the guard HTTP API (GUARD_URL for clients that lease over HTTP)."
  value       = "${local.https ? "https" : "http"}://${aws_lb.this.dns_name}"
}

output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Route 53 zone id of the load balancer, for an alias record."
  value       = aws_lb.this.zone_id
}

output "cluster_arn" {
  description = "ECS cluster running guard."
  value       = aws_ecs_cluster.this.arn
}

output "service_name" {
  description = "ECS service running guard."
  value       = aws_ecs_service.this.name
}

output "task_role_arn" {
  description = "IAM role guard's tasks run as (sync-aws and SQS visibility backoff permissions)."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "IAM role ECS uses to start guard's tasks."
  value       = aws_iam_role.execution.arn
}

output "redis_primary_endpoint" {
  description = "Primary endpoint address of the Redis replication group (TLS, AUTH required)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "redis_url_secret_arn" {
  description = "Secrets Manager secret holding GUARD_REDIS_URL (rediss:// with the AUTH token); grant it to Lambda functions that use the SDK directly."
  value       = aws_secretsmanager_secret.redis_url.arn
}

output "redis_auth_token_secret_arn" {
  description = "Secrets Manager secret holding the Redis AUTH token."
  value       = aws_secretsmanager_secret.redis_auth_token.arn
}

output "admin_tokens_secret_arn" {
  description = "Secrets Manager secret holding GUARD_ADMIN_TOKENS."
  value       = local.admin_tokens_secret_arn
}

output "client_tokens_secret_arn" {
  description = "Secrets Manager secret holding GUARD_CLIENT_TOKENS."
  value       = local.client_tokens_secret_arn
}

output "alb_security_group_id" {
  description = "Security group of the load balancer."
  value       = aws_security_group.alb.id
}

output "tasks_security_group_id" {
  description = "Security group of the guard tasks."
  value       = aws_security_group.tasks.id
}

output "redis_security_group_id" {
  description = "Security group of the Redis nodes; add an ingress rule from your Lambda functions' security group to let the SDK reach Redis directly."
  value       = aws_security_group.redis.id
}

output "log_group_name" {
  description = "CloudWatch log group of the guard containers."
  value       = aws_cloudwatch_log_group.this.name
}
