import { listFrom } from '../src/api';
import { BerthModel } from '../src/model';
import { BerthRequestError, messageFromResponse } from '../src/request';
import type { IBerthKernel } from '../src/types';

describe('messageFromResponse', () => {
  it("shows the server's message, not a generic failure", () => {
    const body = { message: 'mem: you asked for 4 GiB per kernel but your policy allows at most 2 GiB', limit: 'max_mem' };
    expect(messageFromResponse(403, 'Forbidden', body, 'POST berth/api/kernels')).toBe(body.message);
    expect(messageFromResponse(503, 'Service Unavailable', { reason: 'the container engine is not running' }, 'x')).toBe(
      'the container engine is not running'
    );
  });
  it('explains a missing route and a body without a message', () => {
    expect(messageFromResponse(404, 'Not Found', '<html>404</html>', 'GET berth/api/images')).toMatch(/server extension enabled/);
    expect(messageFromResponse(500, 'Internal Server Error', null, 'GET berth/api/info')).toBe(
      'GET berth/api/info failed: 500 Internal Server Error'
    );
  });
  it('keeps the status on the error', () => {
    const e = new BerthRequestError('over quota', 403, { message: 'over quota' });
    expect(e).toBeInstanceOf(Error);
    expect(e.status).toBe(403);
    expect(e.message).toBe('over quota');
  });
});

describe('listFrom', () => {
  it('takes the list from an object or a bare list', () => {
    expect(listFrom<number>({ images: [1, 2] }, ['images', 'items'])).toEqual([1, 2]);
    expect(listFrom<number>({ items: [3] }, ['images', 'items'])).toEqual([3]);
    expect(listFrom<number>([4], ['images'])).toEqual([4]);
    expect(listFrom<number>({ other: 1 }, ['images'])).toEqual([]);
  });
});

describe('BerthModel.setKernels', () => {
  const kernel = (id: string, cpuSeconds: number): IBerthKernel => ({
    kernel_id: id,
    image: 'berth/python:3.11',
    resources: { cpu: 1, mem: 512 * 1024 ** 2, gpu: 0 },
    usage: { cpu_seconds: cpuSeconds, mem_bytes: 100 * 1024 ** 2 }
  });
  it('computes each kernel CPU use across polls and forgets stopped kernels', () => {
    const model = new BerthModel();
    model.setKernels([kernel('a', 10)], 0);
    expect(model.cpuInUse.get('a')).toBeNull();
    model.setKernels([kernel('a', 11), kernel('b', 1)], 2000);
    expect(model.cpuInUse.get('a')).toBeCloseTo(0.5);
    expect(model.cpuInUse.get('b')).toBeNull();
    model.setKernels([kernel('b', 3)], 4000);
    expect(model.cpuInUse.has('a')).toBe(false);
    expect(model.cpuInUse.get('b')).toBeCloseTo(1);
    expect(model.kernel('b')?.kernel_id).toBe('b');
    expect(model.kernel('a')).toBeUndefined();
  });
});
