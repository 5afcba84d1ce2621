import { z } from "zod";
import { ERROR_CODE_LIST } from "../errors.js";

export const JOB_STATUSES = ["pending", "processing", "completed", "failed"] as const;
export const JobStatus = z.enum(JOB_STATUSES);
export type JobStatus = z.infer<typeof JobStatus>;

export const Usage = z.object({
  prompt_tokens: z.number().int().min(0),
  completion_tokens: z.number().int().min(0),
  total_tokens: z.number().int().min(0),
});
export type Usage = z.infer<typeof Usage>;

/** `GET /api/v1/jobs/:id` and list entries. Fields appear only in the states the API reference says. */
export const JobView = z.object({
  id: z.string(),
  status: JobStatus,
  model: z.string(),
  created_at: z.string(),
  node_id: z.string().optional(),
  result: z.object({ content: z.string(), usage: Usage }).optional(),
  completed_at: z.string().optional(),
  latency_ms: z.number().optional(),
  error: z.enum(ERROR_CODE_LIST as [string, ...string[]]).optional(),
  error_message: z.string().optional(),
});
export type JobView = z.infer<typeof JobView>;

/** The immediate answer to a non-streaming `POST /api/v1/jobs`. */
export interface JobAccepted {
  id: string;
  status: "pending";
  model: string;
  created_at: string;
}

/** `GET /api/v1/jobs` query. */
export const JobListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  status: JobStatus.optional(),
  since: z.iso.datetime({ offset: true }).optional(),
});
export type JobListQuery = z.infer<typeof JobListQuery>;

export interface JobList {
  jobs: JobView[];
}
