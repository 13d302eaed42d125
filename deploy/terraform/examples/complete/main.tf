# A complete guard deployment: a new VPC, guard on ECS Fargate behind an internal ALB, and
# ElastiCache Redis. `terraform init && terraform apply` in this directory.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60.0, < 6.0.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  type        = string
  description = "AWS region to deploy into."
  default     = "eu-west-1"
}

variable "container_image" {
  type        = string
  description = "guard image built from the repository's Dockerfile and pushed to ECR."
}

variable "sqs_queue_arns" {
  type        = list(string)
  description = "Queues guard may delay messages on (SQS visibility backoff)."
  default     = []
}

data "aws_availability_zones" "available" {
  state = "available"
}

module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "~> 5.8"

  name               = "guard-example"
  cidr               = "10.42.0.0/16"
  azs                = slice(data.aws_availability_zones.available.names, 0, 2)
  private_subnets    = ["10.42.0.0/20", "10.42.16.0/20"]
  public_subnets     = ["10.42.128.0/24", "10.42.129.0/24"]
  enable_nat_gateway = true
  single_nat_gateway = true
}

module "guard" {
  source = "../../"

  name               = "guard-example"
  vpc_id             = module.vpc.vpc_id
  alb_subnet_ids     = module.vpc.private_subnets
  private_subnet_ids = module.vpc.private_subnets
  container_image    = var.container_image

  internal                = true
  alb_ingress_cidr_blocks = [module.vpc.vpc_cidr_block]
  sqs_queue_arns          = var.sqs_queue_arns

  min_capacity = 2
  max_capacity = 4

  tags = {
    environment = "example"
  }
}

output "guard_url" {
  description = "guard HTTP API inside the VPC."
  value       = module.guard.url
}

output "guard_admin_tokens_secret_arn" {
  description = "Read an admin token with: aws secretsmanager get-secret-value --secret-id <arn>."
  value       = module.guard.admin_tokens_secret_arn
}

output "guard_redis_url_secret_arn" {
  description = "GUARD_REDIS_URL for Lambda functions that use the SDK against Redis directly."
  value       = module.guard.redis_url_secret_arn
}
