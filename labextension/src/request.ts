/**
 * Calls to the Berth REST API. A refused request becomes a {@link BerthRequestError}
 * whose message is the server's own (`{"message": …}`), so the sidebar shows "your
 * policy allows at most 2 GiB…" rather than "500 Internal Server Error".
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The Berth API's base path under the server's base URL. */
export const API_NAMESPACE = 'berth/api';

/** A refused or failed call, carrying what the server said. */
export class BerthRequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: Record<string, unknown> | null = null
  ) {
    super(message);
    this.name = 'BerthRequestError';
  }
}

/**
 * The message to show for a failed response: the server's `message` (or `reason`),
 * else a sentence naming the status and the call.
 */
export function messageFromResponse(
  status: number,
  statusText: string,
  body: unknown,
  what: string
): string {
  if (body && typeof body === 'object') {
    const data = body as Record<string, unknown>;
    for (const key of ['message', 'reason', 'error']) {
      const value = data[key];
      if (typeof value === 'string' && value.trim()) {
        return value;
      }
    }
  }
  if (typeof body === 'string' && body.trim() && !body.trim().startsWith('<')) {
    return body.trim().slice(0, 500);
  }
  if (status === 404) {
    return `${what}: not found on this server (is the jupyter-berth server extension enabled and up to date?)`;
  }
  return `${what} failed: ${status} ${statusText}`.trim();
}

/**
 * Call `{base_url}berth/api/{endpoint}` and return the parsed JSON answer.
 *
 * @throws BerthRequestError with the server's message when the answer is not 2xx,
 *   or with a sentence about the network when the server cannot be reached.
 */
export async function requestAPI<T>(
  endpoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endpoint);
  const what = `${init.method ?? 'GET'} ${API_NAMESPACE}/${endpoint}`;
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new BerthRequestError(
      `${what}: the Jupyter server could not be reached (${(error as Error).message ?? error})`,
      0
    );
  }
  const text = await response.text();
  let data: unknown = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    throw new BerthRequestError(
      messageFromResponse(response.status, response.statusText, data, what),
      response.status,
      data && typeof data === 'object' ? (data as Record<string, unknown>) : null
    );
  }
  return data as T;
}
