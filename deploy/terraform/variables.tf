variable "name" {
  type        = string
  description = "Name of the deployment; prefixes every resource (ALB and target group names derive from it, so at most 24 characters)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.name))
    error_message = "name must be 2-24 characters of lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC that holds the ALB, the ECS tasks and the ElastiCache replication group."

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "alb_subnet_ids" {
  type        = list(string)
  description = "Subnets of the load balancer, in at least two availability zones (private subnets for an internal ALB)."

  validation {
    condition     = length(var.alb_subnet_ids) >= 2 && alltrue([for s in var.alb_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "alb_subnet_ids needs at least two subnet-... ids."
  }
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets, in at least two availability zones, for the ECS tasks and the Redis nodes."

  validation {
    condition     = length(var.private_subnet_ids) >= 2 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "private_subnet_ids needs at least two subnet-... ids (Multi-AZ Redis and tasks)."
  }
}

variable "container_image" {
  type        = string
  description = "guard image to run (built from the repository's Dockerfile), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/guard:0.1.0."

  validation {
    condition     = length(trimspace(var.container_image)) > 0 && !can(regex(":latest$", var.container_image))
    error_message = "container_image must be set and pinned to a tag or digest other than :latest."
  }
}

variable "namespace" {
  type        = string
  description = "Default guard namespace of the server (GUARD_NAMESPACE)."
  default     = "default"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", var.namespace))
    error_message = "namespace must be 1-63 characters of letters, digits, '_', '.' and '-'."
  }
}

variable "internal" {
  type        = bool
  description = "Whether the ALB is internal. The admin API changes limits, so keep it off the internet unless you front it with something else."
  default     = true
}

variable "alb_ingress_cidr_blocks" {
  type        = list(string)
  description = "IPv4 CIDR blocks allowed to reach the ALB listeners (e.g. the VPC CIDR and your Lambda subnets)."
  default     = []

  validation {
    condition     = alltrue([for c in var.alb_ingress_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "alb_ingress_cidr_blocks must hold valid IPv4 CIDR blocks."
  }
}

variable "alb_ingress_security_group_ids" {
  type        = list(string)
  description = "Security groups (e.g. of the Lambda functions that lease over HTTP, or of Prometheus) allowed to reach the ALB listeners."
  default     = []

  validation {
    condition     = alltrue([for s in var.alb_ingress_security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "alb_ingress_security_group_ids must hold sg-... ids."
  }
}

variable "certificate_arn" {
  type        = string
  description = "ACM certificate for an HTTPS listener on 443 (HTTP on 80 then redirects). null serves plain HTTP on 80."
  default     = null

  validation {
    condition     = var.certificate_arn == null || can(regex("^arn:aws[a-zA-Z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be null or an ACM certificate ARN."
  }
}

variable "tasks_https_egress_cidr_blocks" {
  type        = list(string)
  description = "Where tasks may open HTTPS (443) connections: ECR, Secrets Manager, CloudWatch Logs, and the Lambda/Tagging APIs for `guard sync-aws`. Narrow it to VPC endpoint ranges when you have them."
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for c in var.tasks_https_egress_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "tasks_https_egress_cidr_blocks must hold valid IPv4 CIDR blocks."
  }
}

variable "assign_public_ip" {
  type        = bool
  description = "Give tasks a public IP (only for subnets without a NAT gateway or VPC endpoints)."
  default     = false
}

variable "task_cpu" {
  type        = number
  description = "Fargate task CPU units."
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.task_cpu)
    error_message = "task_cpu must be one of 256, 512, 1024, 2048, 4096."
  }
}

variable "task_memory" {
  type        = number
  description = "Fargate task memory in MiB (must be a valid combination with task_cpu)."
  default     = 1024

  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 30720
    error_message = "task_memory must be between 512 and 30720 MiB."
  }
}

variable "cpu_architecture" {
  type        = string
  description = "CPU architecture of the image: X86_64 or ARM64."
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "workers" {
  type        = number
  description = "gunicorn workers per task (GUARD_WORKERS)."
  default     = 2

  validation {
    condition     = var.workers >= 1 && var.workers <= 32 && floor(var.workers) == var.workers
    error_message = "workers must be a whole number from 1 to 32."
  }
}

variable "desired_count" {
  type        = number
  description = "Tasks at creation; Application Auto Scaling owns the count afterwards."
  default     = 2

  validation {
    condition     = var.desired_count >= 1
    error_message = "desired_count must be at least 1."
  }
}

variable "min_capacity" {
  type        = number
  description = "Fewest tasks auto scaling keeps (two or more spread the service over availability zones)."
  default     = 2

  validation {
    condition     = var.min_capacity >= 1
    error_message = "min_capacity must be at least 1."
  }
}

variable "max_capacity" {
  type        = number
  description = "Most tasks auto scaling may run."
  default     = 6

  validation {
    condition     = var.max_capacity >= 1 && var.max_capacity <= 100
    error_message = "max_capacity must be between 1 and 100."
  }
}

variable "cpu_target_percent" {
  type        = number
  description = "Average service CPU utilisation that target tracking holds."
  default     = 60

  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be between 10 and 90."
  }
}

variable "environment" {
  type        = map(string)
  description = "Extra plain environment variables for the guard container, e.g. GUARD_WORKER_CONNECTIONS, GUARD_LOG_LEVEL, GUARD_REDIS_TIMEOUT or GUARD_CONFIG (a limits file baked into a derived image). Settings the module manages cannot be overridden here."
  default     = {}

  validation {
    condition = length(setintersection(keys(var.environment), [
      "GUARD_REDIS_URL", "GUARD_ADMIN_TOKENS", "GUARD_CLIENT_TOKENS", "GUARD_NAMESPACE",
      "GUARD_WORKERS", "PROMETHEUS_MULTIPROC_DIR",
    ])) == 0
    error_message = "environment must not set GUARD_REDIS_URL, GUARD_ADMIN_TOKENS, GUARD_CLIENT_TOKENS, GUARD_NAMESPACE, GUARD_WORKERS or PROMETHEUS_MULTIPROC_DIR; the module sets them."
  }
}

variable "admin_tokens_secret_arn" {
  type        = string
  description = "Existing Secrets Manager secret whose value is the comma-separated admin tokens (GUARD_ADMIN_TOKENS). null creates one with a random token."
  default     = null

  validation {
    condition     = var.admin_tokens_secret_arn == null || can(regex("^arn:aws[a-zA-Z-]*:secretsmanager:", var.admin_tokens_secret_arn))
    error_message = "admin_tokens_secret_arn must be null or a Secrets Manager secret ARN."
  }
}

variable "client_tokens_secret_arn" {
  type        = string
  description = "Existing Secrets Manager secret whose value is the comma-separated client (lease) tokens (GUARD_CLIENT_TOKENS). null creates one with a random token."
  default     = null

  validation {
    condition     = var.client_tokens_secret_arn == null || can(regex("^arn:aws[a-zA-Z-]*:secretsmanager:", var.client_tokens_secret_arn))
    error_message = "client_tokens_secret_arn must be null or a Secrets Manager secret ARN."
  }
}

variable "metrics_token_secret_arn" {
  type        = string
  description = "Existing Secrets Manager secret whose value becomes GUARD_METRICS_TOKEN: /metrics then needs that bearer token. null leaves /metrics open (Prometheus convention; the ALB is internal by default)."
  default     = null

  validation {
    condition     = var.metrics_token_secret_arn == null || can(regex("^arn:aws[a-zA-Z-]*:secretsmanager:", var.metrics_token_secret_arn))
    error_message = "metrics_token_secret_arn must be null or a Secrets Manager secret ARN."
  }
}

variable "sqs_queue_arns" {
  type        = list(string)
  description = "SQS queues whose messages guard may delay with ChangeMessageVisibility (the SQS visibility backoff). Empty grants no SQS permission."
  default     = []

  validation {
    condition     = alltrue([for q in var.sqs_queue_arns : can(regex("^arn:aws[a-zA-Z-]*:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]+$", q))])
    error_message = "sqs_queue_arns must hold SQS queue ARNs (arn:aws:sqs:REGION:ACCOUNT:NAME)."
  }
}

variable "redis_node_type" {
  type        = string
  description = "ElastiCache node type."
  default     = "cache.t4g.small"

  validation {
    condition     = can(regex("^cache\\.", var.redis_node_type))
    error_message = "redis_node_type must be an ElastiCache node type such as cache.t4g.small."
  }
}

variable "redis_engine_version" {
  type        = string
  description = "Redis engine version (7.x)."
  default     = "7.1"

  validation {
    condition     = can(regex("^7(\\.[0-9]+)?$", var.redis_engine_version))
    error_message = "redis_engine_version must be a Redis 7 version such as 7.1."
  }
}

variable "redis_num_cache_clusters" {
  type        = number
  description = "Nodes in the replication group (one primary plus replicas); at least 2 for automatic failover and Multi-AZ."
  default     = 2

  validation {
    condition     = var.redis_num_cache_clusters >= 2 && var.redis_num_cache_clusters <= 6
    error_message = "redis_num_cache_clusters must be between 2 and 6."
  }
}

variable "redis_snapshot_retention_days" {
  type        = number
  description = "Days of automatic Redis snapshots (0 disables them)."
  default     = 1

  validation {
    condition     = var.redis_snapshot_retention_days >= 0 && var.redis_snapshot_retention_days <= 35
    error_message = "redis_snapshot_retention_days must be between 0 and 35."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "Customer-managed KMS key for Redis at-rest encryption, the secrets and the log group. null uses AWS-managed keys."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-zA-Z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "secret_recovery_window_days" {
  type        = number
  description = "Days Secrets Manager keeps a deleted secret recoverable (0 deletes at once)."
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or between 7 and 30."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the CloudWatch log group."
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
}
