// The scenario of tests/contract/test_generated_sdk.py, through the typescript-fetch client that
// openapi-generator makes from openapi.yaml, compiled with `tsc --strict` and run with node against the
// live server (tests/contract/test_typescript_sdk.py). Exits non-zero with a message on the first
// broken promise of the schema.
import {
  Configuration,
  ProjectsApi,
  ResponseError,
  WorkspacesApi,
  ApiErrorFromJSON,
  Workspace,
  WorkspaceStatus,
} from "./src";
import type { ApiError } from "./src";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(`FAILED: ${message}`);
}

const basePath = env("API_URL");
const config = (token: string) => new Configuration({ basePath, accessToken: token });

async function waitFor(get: () => Promise<WorkspaceStatus>, wanted: WorkspaceStatus): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = await get();
    if (status === wanted) return;
    check(Date.now() < deadline, `still ${status}, waiting for ${wanted}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// What the schema promises for every error: our ApiError, whatever the status.
async function apiError(call: () => Promise<unknown>): Promise<[number, ApiError]> {
  try {
    await call();
  } catch (error) {
    if (error instanceof ResponseError) {
      return [error.response.status, ApiErrorFromJSON(await error.response.json())];
    }
    throw error;
  }
  throw new Error("FAILED: the call succeeded, an error was expected");
}

async function wholeLife(): Promise<void> {
  const projects = new ProjectsApi(config(env("TOKEN")));
  const workspaces = new WorkspacesApi(config(env("TOKEN")));

  const project = await projects.projectsCreate({
    projectCreateRequest: { name: "sdk-ts", repoUrl: "https://github.com/example/app.git" },
  });
  check(typeof project.id === "string" && project.name === "sdk-ts", "projectsCreate answers the Project");

  // The create is typed as the created Workspace (not the dry-run's plan): its id is right there.
  const created: Workspace = await workspaces.workspacesCreate({
    id: project.id,
    idempotencyKey: `ts-${Date.now()}-${Math.random()}`,
    workspaceCreateRequest: {
      hardware: { cpuKind: "shared", cpus: 2, memoryMb: 1024 },
      keepActive: true,
    },
  });
  check(created.status === WorkspaceStatus.Creating, `created as ${created.status}`);
  check(
    created.machineId === null && created.privateIp === null && created.gitRef === null,
    "nothing provisioned yet",
  );
  check(
    created.hardware.cpuKind === "shared" && created.hardware.cpus === 2 && created.hardware.memoryMb === 1024,
    "the hardware asked for",
  );

  const status = async () => (await workspaces.workspacesRetrieve({ id: created.id })).status;
  await waitFor(status, WorkspaceStatus.Running);
  const running = await workspaces.workspacesRetrieve({ id: created.id });
  check(!!running.machineId && !!running.privateIp && running.errorMessage === null, "provisioned");
  const listed = await workspaces.workspacesList({ projectId: project.id, status: WorkspaceStatus.Running });
  check(
    listed.workspaces.length === 1 && listed.workspaces[0].id === created.id,
    "the running list holds it",
  );

  const stopped = await workspaces.workspacesStop({ id: created.id });
  check(stopped.status === WorkspaceStatus.Stopping, `stop answered ${stopped.status}`);
  await waitFor(status, WorkspaceStatus.Stopped);
  const started = await workspaces.workspacesStart({ id: created.id });
  check(started.status === WorkspaceStatus.Starting, `start answered ${started.status}`);
  await waitFor(status, WorkspaceStatus.Running);

  const events = (await workspaces.workspacesEventsList({ id: created.id })).events;
  const changes = events
    .filter((event) => event.type === "status")
    .map((event) => `${event.fromStatus}>${event.toStatus}`);
  check(
    JSON.stringify(changes) ===
      JSON.stringify([
        "null>creating",
        "creating>starting",
        "starting>running",
        "running>stopping",
        "stopping>stopped",
        "stopped>starting",
        "starting>running",
      ]),
    `status changes ${JSON.stringify(changes)}`,
  );
  check(
    events.some((event) => event.attempt !== null && event.attempt.operation === "provision" && !!event.attempt.requestId),
    "the provisioning attempt and its provider request id",
  );

  await workspaces.workspacesDestroy({ id: created.id });
  const [gone, goneError] = await apiError(() => workspaces.workspacesRetrieve({ id: created.id }));
  check(gone === 404 && goneError.code === "not_found", `deleted: ${gone} ${goneError.code}`);
}

async function typedErrors(): Promise<void> {
  const projects = new ProjectsApi(config(env("TOKEN")));
  const workspaces = new WorkspacesApi(config(env("TOKEN")));
  const project = env("PROJECT_ID");

  const [bad, badError] = await apiError(() =>
    workspaces.workspacesCreate({
      id: project,
      workspaceCreateRequest: { hardware: { cpus: 1, memoryMb: 999_999 } },
    }),
  );
  check(bad === 400 && badError.code === "validation_error", `bad hardware: ${bad} ${badError.code}`);
  const detail = badError.details?.[0];
  check(
    detail?.field === "hardware.memory_mb" && detail.code === "memory_too_high" && detail.allowed?.max === 2048,
    `the rule's bounds: ${JSON.stringify(detail)}`,
  );

  const stranger = new WorkspacesApi(config(`wsk_nope_${"x".repeat(40)}`));
  const [unauthorized, unauthorizedError] = await apiError(() => stranger.workspacesList({}));
  check(unauthorized === 401 && unauthorizedError.code === "invalid_token", `wrong token: ${unauthorized}`);

  const elsewhere = env("OTHER_PROJECT_ID");
  const [theirs, theirsError] = await apiError(() => projects.projectsRetrieve({ id: elsewhere }));
  check(theirs === 404 && theirsError.code === "not_found", `another's project: ${theirs}`);
  const [createdThere, createdThereError] = await apiError(() =>
    workspaces.workspacesCreate({ id: elsewhere, workspaceCreateRequest: {} }),
  );
  check(createdThere === 404 && createdThereError.code === "not_found", `create in another's: ${createdThere}`);
}

const scenarios: Record<string, () => Promise<void>> = { wholeLife, typedErrors };

scenarios[env("SCENARIO")]().then(
  () => console.log("OK"),
  (error: unknown) => {
    console.error(error instanceof Error ? error.stack ?? error.message : error);
    process.exit(1);
  },
);
