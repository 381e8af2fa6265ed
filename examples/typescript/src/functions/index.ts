export { default as hello } from './hello';
export { default as chat } from './chat';
