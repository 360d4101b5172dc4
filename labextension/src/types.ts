/**
 * Shapes of the Berth REST API (`{base_url}berth/api/…`, see docs/rest-api.md).
 *
 * Only the fields the sidebar reads are declared; the server may send more.
 */

/** A resource grant or request. Memory and disk sizes are bytes, CPU is cores, GPU a share. */
export interface IResources {
  cpu: number;
  mem: number;
  gpu: number;
  pids?: number;
  shm?: number;
  /** what the kernel may write outside its volume and folders (its container's writable layer) */
  disk?: number;
}

/** How the server holds kernels to their disk limit (`GET berth/api/info` → `disk`, docs/disk-limits.md). */
export interface IDiskMode {
  /** "enforced" (the engine's storage quotas), "measured" (Berth measures and stops), "none" or "unknown" */
  mode: 'enforced' | 'measured' | 'none' | 'unknown' | string;
  /** in words: what the server found */
  why?: string;
  /** seconds between measurements; `null` when the server samples no usage (then nothing measures) */
  interval_s?: number | null;
  /** seconds a kernel over its limit has to free space before it is stopped */
  grace_s?: number;
}

/** A resource kind a request may name (`GET berth/api/info` → `resources`). */
export interface IResourceKind {
  name: string;
  accepts?: string;
  default?: number;
  max_limit?: string | null;
  total_limit?: string | null;
}

/** `GET berth/api/info` */
export interface IInfo {
  mode: 'standalone' | 'hub' | string;
  user: string;
  groups?: string[];
  version?: string;
  engine?: unknown;
  /** the runtime that runs kernels: "docker", "swarm" or "process" (no container) */
  runtime?: string;
  /** "none" in process mode: kernels are plain local processes */
  isolation?: string;
  /** how disk limits hold here */
  disk?: IDiskMode;
  /** the resource kinds a request may name */
  resources?: IResourceKind[];
}

/** The environment a notebook recorded when saved from a Berth kernel (`metadata.berth.environment`). */
export interface INotebookEnvironment {
  image: string;
  digest?: string | null;
  display_name?: string;
  resources?: Partial<IResources>;
}

/** `POST berth/api/images/resolve`: what that environment gets here. */
export interface IResolvedEnvironment {
  status: 'available' | 'retired' | 'replaced' | 'unknown' | string;
  image: string;
  digest?: string | null;
  display_name?: string;
  message: string;
  nearest?: { image: string; digest?: string | null; display_name?: string } | null;
}

/** One entry of `GET berth/api/presets`. */
export interface IPreset {
  name: string;
  display_name: string;
  description?: string;
  image?: string | null;
  resources: IResources;
}

/** One image of `GET berth/api/images` (labels flattened as `label_<name>` keys). */
export interface IImage {
  ref: string;
  display_name?: string;
  digest?: string | null;
  size?: number;
  state?: string;
  default?: boolean;
  [label: string]: unknown;
}

/** One folder of `GET berth/api/folders`. */
export interface IFolder {
  name: string;
  /** unambiguous: `alice/data`, `@class1/course-materials` */
  reference?: string;
  owner?: { kind: string; name: string };
  mount_path?: string;
  read_only?: boolean;
  mode?: string;
  permission?: string;
  writable?: boolean;
  description?: string;
  [key: string]: unknown;
}

/** A limit as the server writes it: a number, `"unlimited"`, or absent. */
export type Limit = number | 'unlimited' | null | undefined;

/** The effective policy fields the sidebar uses. */
export interface IPolicyLimits {
  max_cpu?: Limit;
  max_mem?: Limit;
  max_gpu?: Limit;
  max_disk?: Limit;
  total_cpu?: Limit;
  total_mem?: Limit;
  total_gpu?: Limit;
  total_disk?: Limit;
  max_kernels?: Limit;
  allowed_images?: string[] | null;
  default?: Record<string, unknown> | null;
}

/** What is in use or left, per resource. */
export interface IAmounts {
  cpu?: Limit;
  mem?: Limit;
  gpu?: Limit;
  disk?: Limit;
  kernels?: Limit;
}

/** `GET berth/api/policy`, normalised by {@link normalizePolicy}. */
export interface IPolicyState {
  limits: IPolicyLimits;
  usage: IAmounts;
  remaining: IAmounts;
  /** the request a kernel gets when nothing is asked (the policy's default, resolved) */
  defaultRequest?: Partial<IResources> | null;
}

/** Live usage of one kernel. */
export interface IKernelUsage {
  cpu_seconds?: number;
  mem_bytes?: number;
  mem_peak_bytes?: number;
  pids?: number;
  gpu_util?: number;
  gpu_mem_bytes?: number;
}

/** One of the user's running Berth kernels (`GET berth/api/kernels`). */
export interface IBerthKernel {
  kernel_id: string;
  name?: string;
  image?: string;
  image_digest?: string | null;
  resources: IResources;
  started_at?: string;
  path?: string;
  usage?: IKernelUsage;
  /** the GPU shares granted: `[{uuid, share}]` */
  gpu_devices?: { uuid: string; share: number }[];
}

/** A GPU device of `GET berth/api/gpus`. */
export interface IGpuDevice {
  uuid: string;
  name?: string;
  index?: number;
  /** "16 GiB" (the server formats it) */
  memory?: string | number;
  memory_bytes?: number;
  /** declared in the server's config (not found through NVML) */
  declared?: boolean;
  mig_mode?: boolean;
  [key: string]: unknown;
}

/** What NVML says of a device right now (`GET berth/api/gpus` → `metrics[uuid]`). */
export interface IGpuMetrics {
  utilization_percent?: number | null;
  memory_used_bytes?: number | null;
  memory_total_bytes?: number | null;
}

/** `GET berth/api/gpus` */
export interface IGpus {
  devices: IGpuDevice[];
  /** free share (0 to 1) per device UUID */
  free: Record<string, number>;
  /** UUIDs of the devices fractions may be granted on */
  shareable?: string[];
  /** fractions are multiples of this share */
  quantum?: number;
  /** NVML's live use per device UUID (empty without NVML, e.g. declared devices) */
  metrics?: Record<string, IGpuMetrics>;
  source?: string;
  message?: string;
}

/** `GET/PUT berth/api/profile` */
export interface IProfile {
  request: Partial<IResources> | null;
  image: string | null;
}

/** The body of `POST berth/api/kernels`. */
export interface IStartRequest {
  image?: string;
  resources: Partial<IResources>;
  folders?: string[];
  preset?: string;
  path?: string;
}

/** The answer of `POST berth/api/kernels`: the Jupyter kernel model plus what Berth granted. */
export interface IStartedKernel {
  id: string;
  name: string;
  berth?: { resources?: IResources; image?: string };
  [key: string]: unknown;
}

/** What the user picked in the sidebar. */
export interface IChoice {
  image: string | null;
  cpu: number;
  mem: number;
  gpu: number;
  /** bytes; absent when the server bounds no disk (the field is not offered, the request names none) */
  disk?: number;
  folders: string[];
}

/** One of the user's starts waiting in the kernel start queue (`GET berth/api/queue`). */
export interface IQueuedStart {
  /** the kernel id, or the job id of a queued job */
  kernel_id: string;
  /** live starts waiting ahead of this one */
  ahead: number;
  cpu: number;
  mem: number;
  gpu: number;
  waiting_s: number;
  deadline: string;
}

/** One budget of the user (their own or a group's) in its current period (`GET berth/api/budget`). */
export interface IBudgetStatus {
  scope: 'user' | 'group';
  name: string;
  period: string;
  resets_at: string;
  limits: Record<string, number>;
  used: Record<string, number>;
  remaining: Record<string, number>;
}

export interface IMyBudget {
  user: string;
  budgets: IBudgetStatus[];
  notices: { allocation_id: string; action: string; message: string; at: string }[];
}

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

/** One of the user's batch jobs (`GET berth/api/jobs`). */
export interface IBerthJob {
  id: string;
  name: string;
  notebook: string;
  image: string;
  resources: Partial<IResources>;
  status: JobStatus;
  reason: string | null;
  message: string | null;
  /** queued jobs: starts waiting ahead of it */
  ahead?: number | null;
  created_at: string;
  started_at?: string | null;
  ended_at: string | null;
}
