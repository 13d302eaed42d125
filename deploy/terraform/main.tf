# guard on AWS: the HTTP API as an ECS Fargate service behind an ALB, its store as an
# ElastiCache Redis 7 replication group (TLS, AUTH, Multi-AZ), secrets in Secrets Manager.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  port       = 8000
  redis_port = 6379
  https      = var.certificate_arn != null
  tags       = merge({ "app" = "guard", "guard:deployment" = var.name }, var.tags)

  account = data.aws_caller_identity.current.account_id
  region  = data.aws_region.current.name
  arn     = data.aws_partition.current.partition

  admin_tokens_secret_arn  = var.admin_tokens_secret_arn != null ? var.admin_tokens_secret_arn : aws_secretsmanager_secret.admin_tokens[0].arn
  client_tokens_secret_arn = var.client_tokens_secret_arn != null ? var.client_tokens_secret_arn : aws_secretsmanager_secret.client_tokens[0].arn
  secret_arns = concat([
    aws_secretsmanager_secret.redis_url.arn,
    local.admin_tokens_secret_arn,
    local.client_tokens_secret_arn,
  ], var.metrics_token_secret_arn == null ? [] : [var.metrics_token_secret_arn])
  metrics_token_secret = var.metrics_token_secret_arn == null ? [] : [
    { name = "GUARD_METRICS_TOKEN", valueFrom = var.metrics_token_secret_arn },
  ]
}

# ---------------------------------------------------------------------------------------------
# Secrets: Redis AUTH token, the Redis URL that embeds it, API tokens
# ---------------------------------------------------------------------------------------------

# ElastiCache AUTH tokens take 16-128 printable characters except @, " and /.
resource "random_password" "redis_auth" {
  length  = 64
  special = false
}

resource "aws_secretsmanager_secret" "redis_auth_token" {
  name_prefix             = "${var.name}-redis-auth-token-"
  description             = "AUTH token of the ${var.name} guard Redis replication group"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "redis_auth_token" {
  secret_id     = aws_secretsmanager_secret.redis_auth_token.id
  secret_string = random_password.redis_auth.result
}

# The container reads GUARD_REDIS_URL; the token travels inside it, so the URL is a secret too
# (injected by ECS `secrets`, never a plain environment value). Lambda functions using the
# SDK can read the same secret.
resource "aws_secretsmanager_secret" "redis_url" {
  name_prefix             = "${var.name}-redis-url-"
  description             = "GUARD_REDIS_URL (rediss:// with AUTH token) of the ${var.name} guard store"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "redis_url" {
  secret_id     = aws_secretsmanager_secret.redis_url.id
  secret_string = "rediss://:${random_password.redis_auth.result}@${aws_elasticache_replication_group.this.primary_endpoint_address}:${local.redis_port}/0"
}

resource "random_password" "admin_token" {
  count   = var.admin_tokens_secret_arn == null ? 1 : 0
  length  = 48
  special = false
}

resource "aws_secretsmanager_secret" "admin_tokens" {
  count                   = var.admin_tokens_secret_arn == null ? 1 : 0
  name_prefix             = "${var.name}-admin-tokens-"
  description             = "GUARD_ADMIN_TOKENS of ${var.name} (comma-separated bearer tokens, admin scope)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "admin_tokens" {
  count         = var.admin_tokens_secret_arn == null ? 1 : 0
  secret_id     = aws_secretsmanager_secret.admin_tokens[0].id
  secret_string = random_password.admin_token[0].result
}

resource "random_password" "client_token" {
  count   = var.client_tokens_secret_arn == null ? 1 : 0
  length  = 48
  special = false
}

resource "aws_secretsmanager_secret" "client_tokens" {
  count                   = var.client_tokens_secret_arn == null ? 1 : 0
  name_prefix             = "${var.name}-client-tokens-"
  description             = "GUARD_CLIENT_TOKENS of ${var.name} (comma-separated bearer tokens, lease scope)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "client_tokens" {
  count         = var.client_tokens_secret_arn == null ? 1 : 0
  secret_id     = aws_secretsmanager_secret.client_tokens[0].id
  secret_string = random_password.client_token[0].result
}

# ---------------------------------------------------------------------------------------------
# Security groups: clients -> ALB -> tasks:8000 -> redis:6379, nothing else inbound
# ---------------------------------------------------------------------------------------------

resource "aws_security_group" "alb" {
  name_prefix = "${var.name}-alb-"
  description = "guard ALB: listeners from allowed clients, forwards to tasks on ${local.port}"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-alb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "tasks" {
  name_prefix = "${var.name}-tasks-"
  description = "guard ECS tasks: ${local.port} from the ALB; out to Redis and HTTPS AWS APIs"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-tasks" })

  lifecycle {
    create_before_destroy = true
  }
}

# No egress rule: Terraform removes the default allow-all, so Redis nodes only answer.
resource "aws_security_group" "redis" {
  name_prefix = "${var.name}-redis-"
  description = "guard Redis: ${local.redis_port} from the guard tasks only"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-redis" })

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  listener_ports = local.https ? [80, 443] : [80]
  alb_cidr_ingress = {
    for pair in setproduct(var.alb_ingress_cidr_blocks, local.listener_ports) :
    "${pair[0]}:${pair[1]}" => { cidr = pair[0], port = pair[1] }
  }
  alb_sg_ingress = {
    for pair in setproduct(var.alb_ingress_security_group_ids, local.listener_ports) :
    "${pair[0]}:${pair[1]}" => { sg = pair[0], port = pair[1] }
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_from_cidr" {
  for_each          = local.alb_cidr_ingress
  security_group_id = aws_security_group.alb.id
  description       = "guard listener ${each.value.port} from ${each.value.cidr}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
}

resource "aws_vpc_security_group_ingress_rule" "alb_from_sg" {
  for_each                     = local.alb_sg_ingress
  security_group_id            = aws_security_group.alb.id
  description                  = "guard listener ${each.value.port} from ${each.value.sg}"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = each.value.sg
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "guard ALB to tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "guard HTTP API from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_redis" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "guard tasks to Redis"
  ip_protocol                  = "tcp"
  from_port                    = local.redis_port
  to_port                      = local.redis_port
  referenced_security_group_id = aws_security_group.redis.id
}

# ECR image pull, Secrets Manager, CloudWatch Logs and the AWS APIs of `guard sync-aws`.
resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  for_each          = toset(var.tasks_https_egress_cidr_blocks)
  security_group_id = aws_security_group.tasks.id
  description       = "guard tasks to AWS APIs over HTTPS"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_tasks" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis from the guard tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.redis_port
  to_port                      = local.redis_port
  referenced_security_group_id = aws_security_group.tasks.id
}

# ---------------------------------------------------------------------------------------------
# ElastiCache: Redis 7, TLS in transit, encrypted at rest, AUTH, automatic failover, Multi-AZ
# ---------------------------------------------------------------------------------------------

resource "aws_elasticache_subnet_group" "this" {
  name        = "${var.name}-redis"
  description = "guard Redis subnets"
  subnet_ids  = var.private_subnet_ids
  tags        = local.tags
}

# guard's keys carry TTLs only as a backstop; an eviction policy that picks keys with a TTL
# (the default volatile-lru) could drop live lease state. Refuse writes instead of evicting.
resource "aws_elasticache_parameter_group" "this" {
  name        = "${var.name}-redis7"
  family      = "redis7"
  description = "guard: no eviction"
  tags        = local.tags

  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id = var.name
  description          = "guard store for ${var.name}"

  engine               = "redis"
  engine_version       = var.redis_engine_version
  node_type            = var.redis_node_type
  num_cache_clusters   = var.redis_num_cache_clusters
  port                 = local.redis_port
  parameter_group_name = aws_elasticache_parameter_group.this.name
  subnet_group_name    = aws_elasticache_subnet_group.this.name
  security_group_ids   = [aws_security_group.redis.id]

  automatic_failover_enabled = true
  multi_az_enabled           = true

  transit_encryption_enabled = true
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  auth_token                 = random_password.redis_auth.result
  auth_token_update_strategy = "ROTATE"

  snapshot_retention_limit   = var.redis_snapshot_retention_days
  auto_minor_version_upgrade = true
  apply_immediately          = false

  tags = local.tags
}

# ---------------------------------------------------------------------------------------------
# Logs and IAM
# ---------------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = local.tags
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    sid     = "EcsTasksAssume"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

# Execution role: what ECS itself needs to start the task.
resource "aws_iam_role" "execution" {
  name_prefix        = "${var.name}-exec-"
  description        = "ECS task execution role of ${var.name}: pull the image, read its secrets, write logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "PullImageAuth"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    resources = ["*"]
  }

  statement {
    sid       = "ReadSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.secret_arns
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "DecryptSecrets"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "guard-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# Task role: what guard itself calls. Exactly `guard sync-aws` (resolve tag/stack selectors,
# push caps into SQS event source mappings) and the SQS visibility backoff; nothing more.
resource "aws_iam_role" "task" {
  name_prefix        = "${var.name}-task-"
  description        = "guard task role of ${var.name}: sync-aws and SQS visibility backoff"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "task" {
  # Neither action supports resource-level permissions.
  statement {
    sid       = "ResolveSelectors"
    actions   = ["tag:GetResources", "lambda:ListEventSourceMappings"]
    resources = ["*"]
  }

  statement {
    sid     = "PushEventSourceMappingCaps"
    actions = ["lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"]
    resources = [
      "arn:${local.arn}:lambda:${local.region}:${local.account}:event-source-mapping:*",
    ]
  }

  dynamic "statement" {
    for_each = length(var.sqs_queue_arns) > 0 ? [var.sqs_queue_arns] : []
    content {
      sid       = "SqsVisibilityBackoff"
      actions   = ["sqs:ChangeMessageVisibility"]
      resources = statement.value
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "guard-task"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# ---------------------------------------------------------------------------------------------
# Load balancer
# ---------------------------------------------------------------------------------------------

resource "aws_lb" "this" {
  name                       = "${var.name}-alb"
  load_balancer_type         = "application"
  internal                   = var.internal
  subnets                    = var.alb_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  idle_timeout               = 60
  tags                       = local.tags
}

resource "aws_lb_target_group" "this" {
  name                 = "${var.name}-tg"
  port                 = local.port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  tags                 = local.tags

  health_check {
    path                = "/healthz"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  tags              = local.tags

  default_action {
    type             = local.https ? "redirect" : "forward"
    target_group_arn = local.https ? null : aws_lb_target_group.this.arn

    dynamic "redirect" {
      for_each = local.https ? [1] : []
      content {
        port        = "443"
        protocol    = "HTTPS"
        status_code = "HTTP_301"
      }
    }
  }
}

resource "aws_lb_listener" "https" {
  count             = local.https ? 1 : 0
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  tags              = local.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }
}

# ---------------------------------------------------------------------------------------------
# ECS Fargate
# ---------------------------------------------------------------------------------------------

resource "aws_ecs_cluster" "this" {
  name = var.name
  tags = local.tags

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  tags                     = local.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name      = "guard"
      image     = var.container_image
      essential = true
      portMappings = [
        { containerPort = local.port, protocol = "tcp" },
      ]
      environment = [
        for k, v in merge(
          # the module's namespace is on /metrics even before an admin has written to it
          # (guard serve exports the namespaces admins wrote plus GUARD_METRICS_NAMESPACES);
          # `environment` may override this one
          { GUARD_METRICS_NAMESPACES = var.namespace },
          var.environment,
          {
            GUARD_NAMESPACE          = var.namespace
            GUARD_WORKERS            = tostring(var.workers)
            PROMETHEUS_MULTIPROC_DIR = "/var/lib/guard/metrics"
            AWS_REGION               = local.region
          },
        ) : { name = k, value = v }
      ]
      # GUARD_REDIS_URL is rediss://:<AUTH token>@<primary endpoint>:6379/0, built by this
      # module from the replication group and kept in Secrets Manager.
      secrets = concat([
        { name = "GUARD_REDIS_URL", valueFrom = aws_secretsmanager_secret.redis_url.arn },
        { name = "GUARD_ADMIN_TOKENS", valueFrom = local.admin_tokens_secret_arn },
        { name = "GUARD_CLIENT_TOKENS", valueFrom = local.client_tokens_secret_arn },
      ], local.metrics_token_secret)
      healthCheck = {
        command = [
          "CMD", "python", "-c",
          "import sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2); sys.exit(0 if r.status == 200 else 1)",
        ]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 15
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "guard"
        }
      }
      user                   = "10001:10001"
      readonlyRootFilesystem = false
    },
  ])

  depends_on = [
    aws_secretsmanager_secret_version.redis_url,
    aws_secretsmanager_secret_version.admin_tokens,
    aws_secretsmanager_secret_version.client_tokens,
  ]
}

resource "aws_ecs_service" "this" {
  name                              = var.name
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.this.arn
  launch_type                       = "FARGATE"
  desired_count                     = var.desired_count
  health_check_grace_period_seconds = 30
  enable_execute_command            = false
  propagate_tags                    = "SERVICE"
  tags                              = local.tags

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = var.assign_public_ip
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = "guard"
    container_port   = local.port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    # Application Auto Scaling owns the task count after creation.
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.http, aws_lb_listener.https, aws_iam_role_policy.execution]
}

# ---------------------------------------------------------------------------------------------
# Application Auto Scaling: target tracking on average CPU
# ---------------------------------------------------------------------------------------------

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this.name}"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity
  tags               = local.tags
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu-target"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
