// The handler path of a function's folder, relative to the project: the
// framework evaluates serverless.ts in the project's folder, and __dirname
// is each file's own.
export const handlerPath = (context: string) => {
  return `${context.split(process.cwd())[1].substring(1).replace(/\\/g, '/')}`;
};
