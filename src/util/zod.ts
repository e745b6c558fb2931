// zod's "mini" build, by name, with its English messages. The classic build (and a namespace
// import of mini) brings every locale and the JSON-schema tooling along: ~400 KB to parse at every
// start-up of the CLI.
import {
  _default,
  array,
  boolean,
  config,
  int,
  literal,
  looseObject,
  minLength,
  nonnegative,
  nullish,
  number,
  object,
  optional,
  pipe,
  record,
  regex,
  strictObject,
  string,
  transform,
  union,
  unknown,
  type infer as ZodInfer,
} from 'zod/mini';
import en from 'zod/v4/locales/en.js';

config(en());

export const z = { _default, array, boolean, int, literal, looseObject, minLength, nonnegative, nullish, number, object, optional, pipe, record, regex, strictObject, string, transform, union, unknown };
export type Infer<T> = ZodInfer<T>;
